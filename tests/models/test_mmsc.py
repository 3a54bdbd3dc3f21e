"""The multi-modal model (``--model mmsc``): MUNIT networks, training, resume, test-time styles."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import train as train_script
from data import create_dataset
from helpers import LSESIM, MMSC_SMALL, ROOT, TINY, build_training_model, run_script as run, write_images
from models import batch_extras, create_model
from models.wrappers import CompiledOrEager
from models.networks.munit import LayerNorm, MultiScaleImageDiscriminator, MUNITGenerator, adaptive_instance_norm
from options.test_options import TestOptions
from options.train_options import TrainOptions

# Small MUNIT: 8 filters, one residual block, a 16-wide MLP, a 3-layer D at 2 scales (32 px crops).
SMALL = MMSC_SMALL
NETS = ["G_A", "G_B", "D_A", "D_B"]


def common(tiny, ck, name):
    return ["--dataroot", str(tiny), "--name", name, "--checkpoints_dir", str(ck)] + TINY + SMALL


build = build_training_model


# ---- networks ------------------------------------------------------------------------------------
def conv_out(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


@pytest.mark.parametrize("size", [(32, 48), (64, 64)])
def test_network_shapes(size):
    h, w = size
    net = MUNITGenerator(3, ngf=8, style_dim=8, n_downsample=2, n_res=2, mlp_dim=16)
    x = torch.rand(2, 3, h, w) * 2 - 1
    content, style = net(x)
    assert content.shape == (2, 32, h // 4, w // 4) and style.shape == (2, 8, 1, 1)
    out = net(content, style)
    assert out.shape == (2, 3, h, w) and out.abs().max() <= 1
    # the MLP produces exactly the decoder's AdaIN parameters: 2 layers x (C shifts + C scales) per block
    assert net.mlp(style).shape == (2, 2 * 2 * 32 * 2)
    d = MultiScaleImageDiscriminator(3, ndf=8, n_layers=3, n_scales=2)
    outputs, sh, sw = d(x), h, w
    assert len(outputs) == 2
    for scale, o in enumerate(outputs):
        if scale:
            sh, sw = conv_out(sh, 3, 2, 1), conv_out(sw, 3, 2, 1)
        eh, ew = sh, sw
        for _ in range(3):
            eh, ew = conv_out(eh, 4, 2, 1), conv_out(ew, 4, 2, 1)
        assert o.shape == (2, 1, eh, ew)


def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


def test_published_sizes_have_munits_parameter_count():
    """Width 64, style 8, 2 downsamplings, 4 residual blocks, MLP 256 x 3; D 64 wide, 4 layers, 3 scales,
    counted layer by layer from the architecture."""
    c = 256
    style = (
        conv_params(3, 64, 7)
        + conv_params(64, 128, 4)
        + conv_params(128, 256, 4)
        + 2 * conv_params(256, 256, 4)
        + conv_params(256, 8, 1)
    )
    content = conv_params(3, 64, 7) + conv_params(64, 128, 4) + conv_params(128, 256, 4) + 8 * conv_params(c, c, 3)
    decoder = (
        8 * conv_params(c, c, 3)
        + conv_params(256, 128, 5)
        + 2 * 128
        + conv_params(128, 64, 5)
        + 2 * 64
        + conv_params(64, 3, 7)
    )
    mlp = (8 * 256 + 256) + (256 * 256 + 256) + (256 * 16 * c + 16 * c)
    net = MUNITGenerator(3)
    assert sum(p.numel() for p in net.parameters()) == style + content + decoder + mlp
    scale = (
        conv_params(3, 64, 4)
        + conv_params(64, 128, 4)
        + conv_params(128, 256, 4)
        + conv_params(256, 512, 4)
        + conv_params(512, 1, 1)
    )
    assert sum(p.numel() for p in MultiScaleImageDiscriminator(3).parameters()) == 3 * scale


def test_adain_and_layer_norm_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 4))
    shift, scale = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    expected = np.empty_like(x)
    for b in range(2):
        for ch in range(3):
            plane = x[b, ch]
            expected[b, ch] = (plane - plane.mean()) / np.sqrt(plane.var() + 1e-5) * scale[b, ch] + shift[b, ch]
    got = adaptive_instance_norm(*(torch.tensor(a, dtype=torch.float64) for a in (x, shift, scale)))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    norm = LayerNorm(3).double()
    expected = np.stack([(s - s.mean()) / (s.std(ddof=1) + 1e-5) for s in x])
    expected = expected * norm.gamma.detach().numpy()[None, :, None, None]
    np.testing.assert_allclose(norm(torch.tensor(x)).detach().numpy(), expected, atol=1e-10)
    assert 0 <= norm.gamma.min() and norm.gamma.max() < 1  # MUNIT's uniform start


def test_the_style_code_changes_the_output():
    torch.manual_seed(0)
    net = MUNITGenerator(3, ngf=8, n_res=1, mlp_dim=16).eval()
    content, _ = net(torch.rand(1, 3, 32, 32) * 2 - 1)
    s1, s2 = torch.randn(1, 8, 1, 1), torch.randn(1, 8, 1, 1)
    with torch.no_grad():
        a, b, again = net(content, s1), net(content, s2), net(content, s1)
    assert torch.equal(a, again)
    assert (a - b).abs().mean() > 1e-3


# ---- options and bad input -----------------------------------------------------------------------
def test_munit_defaults():
    opt = TrainOptions(["--model", "mmsc", "--gpu_ids", "-1"]).parse()
    assert (opt.style_dim, opt.n_res, opt.mlp_dim, opt.mlp_layers, opt.n_downsample, opt.gan_mode) == (
        8,
        4,
        256,
        3,
        2,
        "lsgan",
    )
    assert (opt.lr, opt.beta1, opt.beta2, opt.weight_decay) == (1e-4, 0.5, 0.999, 1e-4)
    assert (opt.lambda_rec_x, opt.lambda_rec_s, opt.lambda_rec_c, opt.lambda_cycle, opt.lambda_spatial) == (
        10,
        1,
        1,
        0,
        10,
    )
    assert (opt.n_layers_D, opt.n_scales_D, opt.init_type, opt.loss_mode, opt.learned_attn) == (
        4,
        3,
        "kaiming",
        "cos",
        False,
    )


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--crop_size", "30", "--load_size", "30"], "--crop_size 30: --model mmsc needs a multiple of 4"),
        (["--n_scales_D", "3", "--n_layers_D", "4"], "needs at least 64"),
        (["--style_dim", "0"], "--style_dim 0: must be at least 1"),
        (["--lambda_identity", "1", "--output_nc", "1"], "--lambda_identity 1.0 needs --input_nc equal to --output_nc"),
    ],
)
def test_bad_training_options_are_one_line(extra, needle, tiny, tmp_path, monkeypatch, capsys):
    assert run(train_script, common(tiny, tmp_path, "bad") + extra, monkeypatch) != 0
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


# ---- training ------------------------------------------------------------------------------------
def g_terms(model, batch):
    torch.manual_seed(7)  # the same style codes and queries before and after
    model.set_input(batch)
    with torch.no_grad():
        model.forward()
        model._spatial_feats()
        return model.compute_G_loss()[1]


def write_smooth_images(folder, count, seed):
    """Learnable pictures: 5x6 random colours upsampled bicubically to 40x48."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = Image.fromarray((rng.random((5, 6, 3)) * 255).astype(np.uint8))
        small.resize((48, 40), Image.Resampling.BICUBIC).save(folder / f"{i}.png")


@pytest.mark.slow
def test_a_tiny_run_learns_and_reports_every_loss(tmp_path):
    for i, split in enumerate(["trainA", "trainB"]):
        write_smooth_images(tmp_path / "data" / split, 2, seed=i)
    opt, model = build(common(tmp_path / "data", tmp_path, "learn") + ["--lr", "0.001", "--lambda_cycle", "1"])
    assert model.optimizer_G.param_groups[0]["weight_decay"] == 1e-4
    dataset = create_dataset(opt)
    fixed = next(iter(dataset))
    before = g_terms(model, fixed)
    for _ in range(10):
        for batch in dataset:
            model.set_input(batch)
            model.optimize_parameters()
            losses = model.get_current_losses()
            assert set(losses) == set(model.loss_names) and all(np.isfinite(v) for v in losses.values())
    after = g_terms(model, fixed)
    assert {"cycle_A", "G_s"} <= set(after)
    for name in ("rec_x_A", "rec_x_B", "cycle_A"):
        assert after[name] < 0.8 * before[name], (name, before[name], after[name])


def test_spatial_loss_sums_both_directions(tiny, tmp_path):
    """G_s = lambda * (loss(real_A, fake_B) + loss(real_B, fake_A)), each computed on its own."""
    opt, model = build(common(tiny, tmp_path, "sum") + ["--patch_nums", "0"])  # all queries: no sampling
    model.set_input(next(iter(create_dataset(opt))))
    with torch.no_grad():
        model.forward()
        model._spatial_feats()
        together = float(model.compute_G_loss()[1]["G_s"])
        feats = [model.vgg(x) for x in (model.real_A, model.fake_B, model.real_B, model.fake_A)]
        feats = [[f[model.vgg.layers.index(i)] for i in model.attn_layers] for f in feats]
        apart = float(model.netF(feats[0], feats[1]) + model.netF(feats[2], feats[3])) * 10
    assert together == pytest.approx(apart, rel=1e-5)


def test_identity_term_is_each_domain_through_the_others_encoder_with_its_own_style(tiny, tmp_path):
    """--lambda_identity 2: idt_B = G_B(content of real_B by E_A, style of real_B by E_B), each computed on its
    own; the batched translations and reconstructions equal those of a run without the term."""
    argv = common(tiny, tmp_path, "idt") + ["--lambda_identity", "2"]
    opt, model = build(argv)
    _, plain = build(common(tiny, tmp_path, "plain"))
    batch = next(iter(create_dataset(opt)))
    terms = g_terms(model, batch)
    for net in ("G_A", "G_B"):
        for a, b in zip(getattr(model, "net" + net).parameters(), getattr(plain, "net" + net).parameters()):
            assert torch.equal(a, b)
    with torch.no_grad():
        c_idt_b, _ = model.netG_A(model.real_B)
        _, s_b = model.netG_B(model.real_B)
        idt_b = model.netG_B(c_idt_b, s_b)
        c_idt_a, _ = model.netG_B(model.real_A)
        _, s_a = model.netG_A(model.real_A)
        idt_a = model.netG_A(c_idt_a, s_a)
    assert torch.allclose(model.idt_B, idt_b, atol=1e-5) and torch.allclose(model.idt_A, idt_a, atol=1e-5)
    expected = 2 * (idt_b - model.real_B).abs().mean()
    assert float(terms["idt_B"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["idt_A"]) == pytest.approx(float(2 * (idt_a - model.real_A).abs().mean()), rel=1e-5)
    plain_terms = g_terms(plain, batch)
    assert "idt_A" not in plain_terms
    torch.testing.assert_close(model.fake_B, plain.fake_B, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.rec_A, plain.rec_A, atol=1e-5, rtol=0)
    assert {"idt_A", "idt_B"} <= set(model.loss_names) and {"idt_A", "idt_B"} <= set(model.visual_names)


def test_lsesim_resume_is_bit_identical_and_test_py_writes_k_outputs(tiny, tmp_path, monkeypatch):
    """Through train.py, with LSeSim heads (net_F) shared by both directions. The resume with mmsc's
    defaults (FSeSim) is checked for every model in test_conformance.py."""
    extra, nets = LSESIM, NETS + ["F"]
    ck = tmp_path / "ck"
    assert run(train_script, common(tiny, ck, "full") + extra + ["--max_iters", "3"], monkeypatch) == 0
    assert run(train_script, common(tiny, ck, "part") + extra + ["--max_iters", "1"], monkeypatch) == 0
    assert (
        run(train_script, common(tiny, ck, "part") + extra + ["--max_iters", "3", "--continue_train"], monkeypatch) == 0
    )
    for net in nets:
        a = torch.load(ck / "full" / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(ck / "part" / f"latest_net_{net}.pth", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net
    res = tmp_path / "res"
    assert (
        run(
            test_script,
            [
                "--dataroot",
                tiny,
                "--name",
                "full",
                "--checkpoints_dir",
                ck,
                "--results_dir",
                res,
                "--gpu_ids",
                "-1",
                "--n_styles",
                "3",
                "--preprocess",
                "none",
            ],
            monkeypatch,
        )
        == 0
    )
    images = res / "full" / "test_latest" / "images"
    assert sorted(os.listdir(images)) == ["fake_B_1", "fake_B_2", "fake_B_3", "real_A"]
    assert all(len(os.listdir(images / d)) == 2 for d in os.listdir(images))
    page = (res / "full" / "test_latest" / "index.html").read_text()
    rows = page.split("<table")[1:]
    assert len(rows) == 2
    for name, row in zip(("img_0", "img_1"), rows):  # one row per input: input | 3 outputs
        labels = list(dict.fromkeys(re.findall(rf'src="(\w+)/{name}\.png"', row)))
        assert labels == ["real_A", "fake_B_1", "fake_B_2", "fake_B_3"]


# ---- test time -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """A 1-step run (AtoB) saved by train.py, to test with."""
    ck = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run(train_script, common(tiny, ck, "run") + ["--max_iters", "1"], monkeypatch) == 0
    return ck


def load_test_model(tiny, ck, extra=()):
    model = create_model(options_of_test_run(tiny, ck, extra))
    model.setup(epoch="latest")
    return model


def options_of_test_run(tiny, ck, extra=()):
    return TestOptions(
        [
            "--dataroot",
            str(tiny),
            "--name",
            "run",
            "--checkpoints_dir",
            str(ck),
            "--gpu_ids",
            "-1",
            "--preprocess",
            "none",
        ]
        + list(extra)
    ).parse()


def translate(model, images, extras=None):
    model.set_input({"A": images, "A_paths": [f"{i}.png" for i in range(len(images))]} | (extras or {}))
    model.test()
    return model.get_current_visuals()


def test_the_same_codes_for_every_input_and_columns_differ(tiny, trained):
    model = load_test_model(tiny, trained, ["--n_styles", "3", "--seed", "5"])
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    both = translate(model, x)
    one = translate(model, x[1:])
    assert list(both) == ["real_A", "fake_B_1", "fake_B_2", "fake_B_3"]
    for k in (1, 2, 3):
        torch.testing.assert_close(both[f"fake_B_{k}"][1:], one[f"fake_B_{k}"], atol=1e-5, rtol=0)
    assert (both["fake_B_1"] - both["fake_B_2"]).abs().mean() > 1e-4
    # the codes are N(0, I) draws from --seed: independently drawn here
    codes = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(5))
    nets = model.networks()
    with torch.no_grad():
        content = nets["G_A"].enc_content(x)
        expected = nets["G_B"].dec(content, nets["G_B"].mlp(codes[1:2].expand(2, -1, -1, -1)))
    torch.testing.assert_close(both["fake_B_2"], expected, atol=1e-5, rtol=0)


def test_example_guided_output_uses_the_references_style(tiny, trained, tmp_path):
    write_images(tmp_path / "ref", 1, size=(32, 32), seed=9)
    ref_path = tmp_path / "ref" / "img_0.png"
    opt = options_of_test_run(tiny, trained, ["--style_image", str(ref_path)])
    model = create_model(opt)
    model.setup(epoch="latest")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    visuals = translate(model, x, batch_extras(opt))  # what every batch of the data carries
    assert list(visuals) == ["real_A", "fake_B_1", "style_B_1"]
    ref = torch.from_numpy(np.asarray(Image.open(ref_path), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    torch.testing.assert_close(visuals["style_B_1"], ref)
    nets = model.networks()
    with torch.no_grad():
        code = nets["G_B"].enc_style(ref)
        expected = nets["G_B"].dec(nets["G_A"].enc_content(x), nets["G_B"].mlp(code))
    torch.testing.assert_close(visuals["fake_B_1"], expected, atol=1e-5, rtol=0)


def test_test_py_takes_style_images_through_the_data(tiny, trained, tmp_path, monkeypatch):
    """test.py --style_image: the loader adds the references to every batch, one output and one
    style column per reference."""
    write_images(tmp_path / "ref", 2, size=(32, 32), seed=9)
    refs = [tmp_path / "ref" / "img_0.png", tmp_path / "ref" / "img_1.png"]
    res = tmp_path / "res"
    assert (
        run(
            test_script,
            [
                "--dataroot",
                tiny,
                "--name",
                "run",
                "--checkpoints_dir",
                trained,
                "--results_dir",
                res,
                "--gpu_ids",
                "-1",
                "--preprocess",
                "none",
                "--num_test",
                "1",
                "--style_image",
                *refs,
            ],
            monkeypatch,
        )
        == 0
    )
    images = res / "run" / "test_latest" / "images"
    assert sorted(os.listdir(images)) == ["fake_B_1", "fake_B_2", "real_A", "style_B_1", "style_B_2"]


def test_reverse_direction_and_unpadded_sizes(tiny, trained):
    model = load_test_model(tiny, trained, ["--direction", "BtoA", "--n_styles", "2"])
    x = torch.rand(1, 3, 30, 37) * 2 - 1  # not multiples of 4: padded by reflection, cropped back
    visuals = translate(model, x)
    assert visuals["fake_B_1"].shape == x.shape
    nets = model.networks()
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2), mode="reflect")
    with torch.no_grad():
        content = nets["G_B"].enc_content(padded)  # B -> A: B's encoder, A's decoder
        expected = nets["G_A"].dec(content, nets["G_A"].mlp(model.style_codes[:1]))[:, :, :30, :37]
    torch.testing.assert_close(visuals["fake_B_1"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--n_styles", "0"], "--n_styles 0: must be at least 1"),
        (["--style_image", "/nonexistent.png"], "/nonexistent.png"),
    ],
)
def test_bad_test_options_are_one_line(extra, needle, tiny, trained, tmp_path, monkeypatch, capsys):
    argv = [
        "--dataroot",
        tiny,
        "--name",
        "run",
        "--checkpoints_dir",
        trained,
        "--gpu_ids",
        "-1",
        "--results_dir",
        tmp_path,
    ] + extra
    assert run(test_script, argv, monkeypatch) != 0
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


# ---- speed switches and several processes ---------------------------------------------------------
def one_step(tiny, ck, extra=()):
    opt, model = build(common(tiny, ck, "amp") + ["--batch_size", "2"] + list(extra))
    dataset = create_dataset(opt)
    dataset.set_epoch(1)
    model.set_input(next(iter(dataset)))
    model.optimize_parameters()
    return model


def test_bf16_and_channels_last_steps_are_close_to_float32(tiny, tmp_path):
    """Bounds: 2x the deviations measured here (bf16: losses 2.6e-2 relative, fake_B 0.035 absolute after
    the 8-bit-mantissa generator; channels_last: float32 rounding only, 6.6e-7 and 1.8e-6)."""
    reference = one_step(tiny, tmp_path)
    for extra, loss_tol, fake_tol in ((["--amp", "bf16"], 5.2e-2, 0.07), (["--channels_last"], 1.4e-6, 3.6e-6)):
        model = one_step(tiny, tmp_path, extra)
        losses, ref = model.get_current_losses(), reference.get_current_losses()
        for name, value in ref.items():
            assert abs(losses[name] - value) <= loss_tol * max(abs(value), 1e-2), (extra, name)
        assert model.fake_B.dtype == torch.float32
        assert (model.fake_B - reference.fake_B).abs().max() <= fake_tol, extra


def test_grey_to_colour_trains(tiny, tmp_path):
    model = one_step(tiny, tmp_path, ["--input_nc", "1"])
    assert model.real_A.shape[1] == model.fake_A.shape[1] == 1 and model.fake_B.shape[1] == 3
    assert all(np.isfinite(v) for v in model.get_current_losses().values())


@pytest.mark.slow
def test_fp16_step_is_scaled_and_compile_wraps_all_four_networks(tiny, tmp_path, monkeypatch):
    model = one_step(tiny, tmp_path, ["--amp", "fp16"])
    assert model.scaler.is_enabled() and all(np.isfinite(v) for v in model.get_current_losses().values())
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module: calls.append(module) or module)
    model = one_step(tiny, tmp_path, ["--compile"])
    nets = model.networks()
    assert all(isinstance(getattr(model, "net" + n), CompiledOrEager) for n in NETS)
    assert calls == [nets[n] for n in NETS]
    model.save_networks("c")
    assert list(torch.load(model.net_path("c", "G_A"), weights_only=True)) == list(nets["G_A"].state_dict())


@pytest.mark.slow
def test_two_processes_agree_and_match_one_process(tiny, tmp_path):
    """torchrun, 2 CPU ranks of batch 1 vs one process of batch 2: identical ranks, the same gradients."""
    data = tmp_path / "data"
    for i, split in enumerate(["trainA", "trainB"]):
        write_images(data / split, 2, seed=i)
    argv = ["--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck")] + TINY + SMALL + LSESIM
    two = argv + ["--name", "ddp", "--max_iters", "1"]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    )  # the worker imports helpers
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(ROOT / "tests" / "training" / "test_dist.py"),
        str(tmp_path / "dumps"),
        " ".join(two),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / "dumps" / f"run0_rank{r}.pth", weights_only=True) for r in (0, 1))
    assert rank1["saves"] == 0 and rank0["saves"] > 0
    for net in NETS + ["F"]:
        assert all(torch.equal(rank0["nets"][net][k], rank1["nets"][net][k]) for k in rank0["nets"][net]), net
    opt, model = build(argv + ["--name", "one", "--batch_size", "2"])
    dataset = create_dataset(opt)
    dataset.set_epoch(1)
    model.set_input(next(iter(dataset)))
    model.optimize_parameters()
    for net, module in model.networks().items():
        grads = {k: p.grad for k, p in module.named_parameters()}
        scale = max(g.abs().max().item() for g in grads.values())
        worst = max((rank0["grads"][net][k] - g).abs().max().item() for k, g in grads.items())
        assert scale > 0 and worst <= 2e-5 * scale, (net, worst / scale)
