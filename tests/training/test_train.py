"""train.py / test.py end to end on tiny images: option errors, training, checkpoints, exact resume."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import LSESIM, ROOT, TINY, run_script as run, write_images
import test as test_script
import train as train_script
from models import available_models, create_model, find_model_using_name
from models.schedulers import get_scheduler
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError


TINY_IMAGES = 3  # the shared tiny data set (conftest.py): 3 images per folder


def common(tiny, tmp_path, name):
    return ["--dataroot", tiny, "--name", name, "--checkpoints_dir", tmp_path / "ck"] + TINY


# ---- option and input errors: one line, status 2, no traceback --------------------------------


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--model", "nope"], "--model"),
        (["--dataset_mode", "nope"], "--dataset_mode"),
        (["--netG", "nope"], "--netG"),
        (["--netD", "nope"], "--netD"),
        (["--gan_mode", "nope"], "--gan_mode"),
        (["--norm", "nope"], "--norm"),
        (["--lr_policy", "nope"], "--lr_policy"),
        (["--attn_layers", "4,13"], "--attn_layers"),
        (["--crop_size", "64"], "--crop_size"),
        (["--gpu_ids", "99"], "--gpu_ids"),
        (["--preprocess", "zoomx"], "--preprocess"),
    ],
)
def test_user_errors_exit_2_with_one_line(extra, needle, tiny, tmp_path, monkeypatch, capsys):
    code = run(train_script, common(tiny, tmp_path, "err") + extra, monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0], err


def test_missing_and_empty_folders(tiny, tmp_path, monkeypatch, capsys):
    tiny = Path(shutil.copytree(tiny, tmp_path / "data"))
    for f in (tiny / "trainB").iterdir():
        f.unlink()
    assert run(train_script, common(tiny, tmp_path, "e1"), monkeypatch) == 2
    assert "trainB" in capsys.readouterr().err
    assert run(train_script, common(tmp_path / "nowhere", tmp_path, "e2"), monkeypatch) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "--model", "nope", "--gpu_ids", "-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown model 'nope'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("options", [TrainOptions, TestOptions])
def test_preprocess_is_checked_by_the_parser(options, capsys):
    for value in ("resize", "crop_and_resize", "zoom"):
        with pytest.raises(SystemExit) as exit_info:
            options(["--preprocess", value]).parse()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--preprocess" in err and "scale_width_and_crop" in err
    for value in ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none", "zoom_and_patch"):
        assert options(["--preprocess", value]).parse().preprocess == value


def test_model_registry_finds_every_file():
    files = sorted(p.name[: -len("_model.py")] for p in (ROOT / "models").glob("*_model.py"))
    for name in files:
        if name != "base":
            assert find_model_using_name(name).__name__.lower() == name.replace("_", "") + "model"
    assert "sc" in available_models() and "template" not in available_models()
    with pytest.raises(UserError, match="choose from"):
        find_model_using_name("nope")


# ---- the model itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        [],
        LSESIM,
        [
            "--loss_mode",
            "info",
            "--lambda_identity",
            "1",
            "--lambda_spatial_idt",
            "1",
            "--lambda_perceptual",
            "1",
            "--lambda_style",
            "1",
            "--lambda_gradient",
            "1",
            "--netD",
            "bimulti",
            "--gan_mode",
            "hinge",
        ],
    ],
)
def test_training_step_moves_weights_and_reports_every_loss(variant, tiny, tmp_path):
    if "bimulti" in variant:  # the two-scale D needs at least 47 px
        variant = variant + ["--load_size", "56", "--crop_size", "48"]
    opt = TrainOptions([str(a) for a in common(tiny, tmp_path, "step") + variant]).parse()
    from data import create_dataset

    dataset = create_dataset(opt)
    model = create_model(opt)
    model.setup()
    count = sum(p.numel() for n in model.model_names for p in getattr(model, "net" + n).parameters())
    before = {n: [p.detach().clone() for p in getattr(model, "net" + n).parameters()] for n in model.model_names}
    vgg_before = [p.detach().clone() for p in model.vgg.parameters()]
    for batch, _ in zip(dataset, range(2)):
        model.set_input(batch)
        model.optimize_parameters()
    losses = model.get_current_losses()
    assert set(losses) == set(model.loss_names)
    assert all(np.isfinite(v) for v in losses.values())
    for name in model.model_names:
        after = list(getattr(model, "net" + name).parameters())
        assert any(not torch.equal(a, b) for a, b in zip(after, before[name])), f"net{name} did not move"
    assert all(torch.equal(a, b) and a.grad is None for a, b in zip(model.vgg.parameters(), vgg_before))
    assert count == sum(p.numel() for n in model.model_names for p in getattr(model, "net" + n).parameters())
    assert all(
        not any(p is q for q in model.vgg.parameters())
        for o in model.optimizers
        for g in o.param_groups
        for p in g["params"]
    )


def test_gradient_penalty_interpolates_with_the_pooled_fakes(tiny, tmp_path, monkeypatch):
    import models.sc_model as sc_model

    opt = TrainOptions([str(a) for a in common(tiny, tmp_path, "gp") + ["--lambda_gradient", "1"]]).parse()
    from data import create_dataset

    model = create_model(opt)
    model.setup()
    seen = {}
    pooled = torch.full((1, 3, 32, 32), 0.25)  # what the pool hands back instead of this step's fake_B
    monkeypatch.setattr("models.parts.adversarial.query_across_ranks", lambda pool, fake: pooled)
    real_netD = model.netD

    def recording_netD(x):
        seen.setdefault("D", []).append(x)
        return real_netD(x)

    original_penalty = sc_model.gradient_penalty

    def recording_penalty(netD, real, fake, **kwargs):
        seen["penalty"] = (real, fake)
        return original_penalty(netD, real, fake, **kwargs)

    monkeypatch.setattr(model, "netD", recording_netD)
    monkeypatch.setattr(sc_model, "gradient_penalty", recording_penalty)
    model.set_input(next(iter(create_dataset(opt))))
    model.forward()
    model._extract_features()
    model.compute_D_loss()
    real, fake = seen["penalty"]
    assert fake is pooled and torch.equal(real, model.real_B)
    assert any(x is pooled for x in seen["D"])  # D was trained on the same fakes
    assert not torch.equal(model.fake_B, pooled)


def test_lr_policies():
    import math

    net = torch.nn.Linear(1, 1)
    # The rate after each of 8 epoch ends, by hand: n_epochs 2, n_epochs_decay 3, lr_decay_iters 2.
    expected = {
        "linear": [max(0.0, 1 - max(0, e + 1 - 2) / 4) for e in range(1, 9)],  # 0 from epoch 5 on
        "step": [0.1 ** (e // 2) for e in range(1, 9)],
        "cosine": [(1 + math.cos(math.pi * e / 2)) / 2 for e in range(1, 9)],
        # a constant metric: 6 epochs without improvement exceed the patience of 5 -> x0.2
        "plateau": [1, 1, 1, 1, 1, 1, 0.2, 0.2],
    }
    for policy, rates in expected.items():
        opt = torch.optim.Adam(net.parameters(), lr=1.0)
        sched = get_scheduler(opt, policy=policy, n_epochs=2, n_epochs_decay=3, epoch_count=1, lr_decay_iters=2)
        lrs = []
        for _ in range(8):
            opt.step()
            sched.step(1.0) if policy == "plateau" else sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs == pytest.approx(rates, abs=1e-12), policy
    with pytest.raises(ValueError):
        get_scheduler(opt, policy="nope", n_epochs=1, n_epochs_decay=1, epoch_count=1, lr_decay_iters=1)


# ---- train.py / test.py ------------------------------------------------------------------------


def test_train_writes_checkpoints_html_and_logs(tiny, tmp_path, monkeypatch):
    assert run(train_script, common(tiny, tmp_path, "fs") + ["--save_epoch_freq", "1"], monkeypatch) == 0
    run_dir = tmp_path / "ck" / "fs"
    for name in [
        "latest_net_G.pth",
        "latest_net_D.pth",
        "1_net_G.pth",
        "2_net_G.pth",
        "latest_train_state.pth",
        "loss_log.txt",
        "train_opt.txt",
        "opt.json",
        "web/index.html",
        "web/images/loss_curve.png",
    ]:
        assert (run_dir / name).is_file(), name
    html = (run_dir / "web" / "index.html").read_text()
    assert "epoch002_fake_B.png" in html and "refresh" not in html
    assert "G_s:" in (run_dir / "loss_log.txt").read_text()
    state = torch.load(run_dir / "latest_train_state.pth", weights_only=True)
    assert state["counters"]["epoch"] == 3 and state["counters"]["steps"] == 6
    assert "[default: 286]" in (run_dir / "train_opt.txt").read_text()


def test_resume_is_bit_identical(tiny, tmp_path, monkeypatch):
    args = common(tiny, tmp_path, "x") + LSESIM + ["--dropout", "--pool_size", "2", "--lambda_gradient", "0.1"]
    full = [a if a != "x" else "full" for a in args]
    part = [a if a != "x" else "part" for a in args]
    assert run(train_script, full + ["--max_iters", "5"], monkeypatch) == 0
    assert run(train_script, part + ["--max_iters", "2"], monkeypatch) == 0  # stops mid-epoch 1
    assert run(train_script, part + ["--max_iters", "5", "--continue_train"], monkeypatch) == 0
    for net in "GDF":
        a = torch.load(tmp_path / "ck" / "full" / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(tmp_path / "ck" / "part" / f"latest_net_{net}.pth", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net
    sa = torch.load(tmp_path / "ck" / "full" / "latest_train_state.pth", weights_only=True)
    sb = torch.load(tmp_path / "ck" / "part" / "latest_train_state.pth", weights_only=True)
    assert sa["counters"] == sb["counters"]
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])


def test_ctrl_c_saves_latest(tiny, tmp_path, monkeypatch, capsys):
    from models.sc_model import SCModel

    original = SCModel.optimize_parameters
    calls = []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(SCModel, "optimize_parameters", interrupted)
    assert run(train_script, common(tiny, tmp_path, "int"), monkeypatch) == 130
    state = torch.load(tmp_path / "ck" / "int" / "latest_train_state.pth", weights_only=True)
    assert state["counters"]["steps"] == 2 and state["counters"]["batch"] == 2
    assert "--continue_train" in capsys.readouterr().out


def test_continue_without_checkpoint_and_damaged_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    assert run(train_script, common(tiny, tmp_path, "none") + ["--continue_train"], monkeypatch) == 2
    assert "latest_train_state.pth does not exist" in capsys.readouterr().err
    assert run(train_script, common(tiny, tmp_path, "dmg") + ["--max_iters", "1"], monkeypatch) == 0
    (tmp_path / "ck" / "dmg" / "latest_net_G.pth").write_bytes(b"garbage")
    code = run(
        test_script,
        [
            "--dataroot",
            tiny,
            "--name",
            "dmg",
            "--checkpoints_dir",
            tmp_path / "ck",
            "--gpu_ids",
            "-1",
            "--results_dir",
            tmp_path / "res",
        ],
        monkeypatch,
    )
    err = capsys.readouterr().err
    assert code == 2 and "latest_net_G.pth" in err and "damaged" in err


def test_checkpoints_hold_no_code(tiny, tmp_path, monkeypatch):
    assert run(train_script, common(tiny, tmp_path, "wo") + ["--max_iters", "1"] + LSESIM, monkeypatch) == 0
    for path in (tmp_path / "ck" / "wo").glob("*.pth"):
        torch.load(path, weights_only=True)  # raises if anything but tensors and plain containers


def test_test_py_names_sizes_and_num_test(tiny, tmp_path, monkeypatch):
    assert run(train_script, common(tiny, tmp_path, "t") + ["--max_iters", "1"], monkeypatch) == 0
    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(np.zeros((37, 23, 3), np.uint8)).save(single / "odd.jpg")
    Image.fromarray(np.zeros((50, 41), np.uint8)).save(single / "grey.png")
    base = ["--name", "t", "--checkpoints_dir", tmp_path / "ck", "--gpu_ids", "-1", "--results_dir", tmp_path / "res"]
    assert (
        run(test_script, base + ["--dataroot", single, "--dataset_mode", "single", "--preprocess", "none"], monkeypatch)
        == 0
    )
    out = tmp_path / "res" / "t" / "test_latest"
    sizes = {p.name: Image.open(p).size for p in (out / "images" / "fake_B").iterdir()}
    assert sizes == {"odd.png": (23, 37), "grey.png": (41, 50)}
    assert (out / "index.html").is_file() and "odd.png" in (out / "index.html").read_text()
    assert (
        run(
            test_script,
            base
            + [
                "--dataroot",
                tiny,
                "--num_test",
                "2",
                "--phase",
                "test",
                "--batch_size",
                "2",
                "--results_dir",
                tmp_path / "res2",
            ],
            monkeypatch,
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "res2" / "t" / "test_latest" / "images" / "fake_B").iterdir())
    assert names == ["img_0.png", "img_1.png"]


def test_test_py_translates_each_a_image_once_when_b_is_larger(tiny, tmp_path, monkeypatch, capsys):
    tiny = Path(shutil.copytree(tiny, tmp_path / "data"))
    assert run(train_script, common(tiny, tmp_path, "once") + ["--max_iters", "1"], monkeypatch) == 0
    write_images(tiny / "testB", 7, seed=9)  # 7 B images (img_0..img_6 replace the 3) against 3 A images
    base = [
        "--dataroot",
        tiny,
        "--name",
        "once",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--gpu_ids",
        "-1",
        "--load_size",
        "32",
        "--crop_size",
        "32",
        "--num_threads",
        "0",
        "--num_test",
        "0",
    ]
    for batch in ("1", "2"):
        results = tmp_path / f"res_{batch}"
        assert run(test_script, base + ["--batch_size", batch, "--results_dir", results], monkeypatch) == 0
        assert "translated 3 images" in capsys.readouterr().out
        page = results / "once" / "test_latest"
        names = sorted(p.name for p in (page / "images" / "fake_B").iterdir())
        assert names == ["img_0.png", "img_1.png", "img_2.png"]
        html = (page / "index.html").read_text()
        assert [html.count(f"<h3>img_{i}</h3>") for i in range(3)] == [1, 1, 1]


def test_test_options_take_architecture_from_the_run(tiny, tmp_path, monkeypatch):
    assert (
        run(
            train_script, common(tiny, tmp_path, "arch") + ["--max_iters", "1", "--netG", "resnet_6blocks"], monkeypatch
        )
        == 0
    )
    opt = TestOptions(
        ["--dataroot", str(tiny), "--name", "arch", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    ).parse()
    assert (opt.netG, opt.ngf) == ("resnet_6blocks", 8)
    saved = json.loads((tmp_path / "ck" / "arch" / "opt.json").read_text())
    assert saved["netG"] == "resnet_6blocks"
    opt = TestOptions(
        [
            "--dataroot",
            str(tiny),
            "--name",
            "arch",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--gpu_ids",
            "-1",
            "--ngf",
            "16",
        ]
    ).parse()
    assert opt.ngf == 16


def test_gpu_ids_default_and_cpu(capsys):
    from options.base_options import parse_gpu_ids

    assert parse_gpu_ids("-1") == []
    if not torch.cuda.is_available():
        assert parse_gpu_ids(None) == []
        assert "CPU" in capsys.readouterr().out
