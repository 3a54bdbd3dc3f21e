"""The CUT / FastCUT (``--model cut``) and CycleGAN (``--model cycle_gan``) baselines, end to end on tiny images."""

import numpy as np
import pytest
import torch

import test as test_script
import train as train_script
from data import create_dataset
from helpers import DATA, TINY, reference_sections, run_script as run
from models import create_model
from options.train_options import TrainOptions
from util.seeding import seed_everything

CUT = ["--model", "cut", "--num_patches", "16"]
FASTCUT = CUT + ["--CUT_mode", "FastCUT"]
CYCLE_GAN = ["--model", "cycle_gan"]
NETS = {"cut": "GDF", "fastcut": "GDF", "cycle_gan": ["G_A", "G_B", "D_A", "D_B"]}
VARIANTS = {"cut": CUT, "fastcut": FASTCUT, "cycle_gan": CYCLE_GAN}
# The tiny configuration without the VGG flag: these models use no VGG.
_AT = TINY.index("--vgg_weights")
TINY_NO_VGG = TINY[:_AT] + TINY[_AT + 2 :]


def common(tiny, tmp_path, name):
    return ["--dataroot", tiny, "--name", name, "--checkpoints_dir", tmp_path / "ck"] + TINY_NO_VGG


def build(argv):
    opt = TrainOptions([str(a) for a in argv]).parse()
    seed_everything(opt.seed)
    model = create_model(opt)
    model.setup()
    return opt, model


def shapes(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def test_fastcut_presets_and_command_line_wins():
    opt = TrainOptions(["--model", "cut", "--CUT_mode", "FastCUT", "--gpu_ids", "-1"]).parse()
    assert (opt.lambda_NCE, opt.nce_idt, opt.flip_equivariance, opt.n_epochs, opt.n_epochs_decay) == (
        10.0,
        False,
        True,
        150,
        50,
    )
    opt = TrainOptions(["--model", "cut", "--gpu_ids", "-1"]).parse()
    assert (opt.lambda_NCE, opt.nce_idt, opt.flip_equivariance, opt.n_epochs, opt.lr, opt.pool_size) == (
        1.0,
        True,
        False,
        200,
        0.0002,
        0,
    )
    opt = TrainOptions(
        ["--model", "cut", "--CUT_mode", "FastCUT", "--nce_idt", "--n_epochs", "3", "--gpu_ids", "-1"]
    ).parse()
    assert opt.nce_idt and opt.n_epochs == 3 and opt.lambda_NCE == 10.0
    opt = TrainOptions(["--model", "cycle_gan", "--gpu_ids", "-1"]).parse()
    assert (
        opt.no_antialias,
        opt.no_antialias_up,
        opt.init_type,
        opt.lr,
        opt.pool_size,
        opt.n_epochs,
        opt.lambda_A,
        opt.lambda_identity,
    ) == (True, True, "normal", 0.0002, 50, 100, 10.0, 0.5)


def test_default_networks_have_the_published_keys(tmp_path):
    """Full-size networks (ngf/ndf 64) against key lists derived from the published architectures."""
    sc, cut, cycle = (reference_sections(DATA / f"checkpoint_keys_{n}.txt") for n in ("sc", "cut", "cycle_gan"))
    base = ["--gpu_ids", "-1", "--checkpoints_dir", tmp_path]
    _, model = build(["--model", "cut"] + base)
    nets = model.networks()
    assert shapes(nets["G"]) == sc["net_G"] and shapes(nets["D"]) == sc["net_D"]
    assert shapes(nets["F"]) == cut["net_F"]
    _, model = build(["--model", "cycle_gan"] + base)
    for name, net in model.networks().items():
        assert shapes(net) == cycle[f"net_{name}"], name


def structure_loss(model, batch, name):
    """The structure term of the generator loss on a fixed batch, with fixed random draws (patches, flip)."""
    torch.manual_seed(123)
    model.set_input(batch)
    with torch.no_grad():
        model.forward()
        return float(model.compute_G_loss()[1][name])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_tiny_run_learns_and_reports_every_loss(variant, tiny, tmp_path):
    opt, model = build(common(tiny, tmp_path, variant) + VARIANTS[variant] + ["--lr", "0.002"])
    dataset = create_dataset(opt)
    count = sum(p.numel() for net in model.networks().values() for p in net.parameters())
    name = "NCE" if variant != "cycle_gan" else "cycle_A"
    fixed = next(iter(dataset))
    before = structure_loss(model, fixed, name)
    for _ in range(6):
        for batch in dataset:
            model.set_input(batch)
            model.optimize_parameters()
            losses = model.get_current_losses()
            assert set(losses) == set(model.loss_names) and all(np.isfinite(v) for v in losses.values())
    after = structure_loss(model, fixed, name)
    assert after < 0.9 * before, (before, after)
    # every parameter existed at construction (no lazily built heads)
    assert count == sum(p.numel() for net in model.networks().values() for p in net.parameters())


def test_fastcut_resume_is_bit_identical_and_test_py_loads_the_generator(tiny, tmp_path, monkeypatch):
    """Through train.py, with FastCUT's presets (flip-equivariance draws random numbers every step). The
    resume of cut and cycle_gan with their own defaults is checked for every model in test_conformance.py."""
    variant = "fastcut"
    args = common(tiny, tmp_path, "x") + VARIANTS[variant] + ["--pool_size", "2"]
    full = [a if a != "x" else "full" for a in args]
    part = [a if a != "x" else "part" for a in args]
    assert run(train_script, full + ["--max_iters", "3"], monkeypatch) == 0
    assert run(train_script, part + ["--max_iters", "1"], monkeypatch) == 0
    assert run(train_script, part + ["--max_iters", "3", "--continue_train"], monkeypatch) == 0
    for net in NETS[variant]:
        a = torch.load(tmp_path / "ck" / "full" / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(tmp_path / "ck" / "part" / f"latest_net_{net}.pth", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net
    state = torch.load(tmp_path / "ck" / "part" / "latest_train_state.pth", weights_only=True)
    assert state["counters"]["steps"] == 3
    code = run(
        test_script,
        [
            "--dataroot",
            tiny,
            "--name",
            "full",
            "--checkpoints_dir",
            tmp_path / "ck",
            "--results_dir",
            tmp_path / "res",
            "--gpu_ids",
            "-1",
        ],
        monkeypatch,
    )
    assert code == 0
    assert len(list((tmp_path / "res" / "full" / "test_latest" / "images" / "fake_B").iterdir())) == 2
