"""--amp, --channels_last and --compile on the CPU: one training step against the same step in float32.

Measured on tiny LSeSim models (32 px, batch 2, random VGG, one thread, this 2-core AMD EPYC; the
worse of torch 2.14.1 and 2.3.1, the oldest release requirements.txt allows), as the largest
deviation from float32 over the step's losses (relative), fake_B (absolute), and the gradients
(largest difference relative to the network's largest gradient, or the cosine of the gradient
vectors); MEASURED below holds these figures and every bound is 2x a measured deviation:

- channels_last, float32: the same arithmetic in another memory layout: losses 6.0e-6 relative,
  fake_B 1.7e-7, gradients 1.6e-3 of each network's largest gradient (a similarity at the edge of the
  loss's top-quarter mask, a step function, can switch sides when the rounding changes).
- bf16 autocast (8-bit mantissa): losses 9.6e-3 relative, fake_B 2.7e-3, gradient cosine vs float32
  D 0.99994, heads 0.989, G 0.935 (the mask again; and the heads' last biases have a true gradient of
  0, as the similarity centres the features, which bf16 rounding turns into noise). With channels_last
  as well: within the same figures.
- fp16 autocast with a GradScaler scale that does not overflow (256): losses 3.1e-3, fake_B 2.7e-4,
  cosine G 0.9895, D 0.999995, heads 0.99985. With the default scale (2^16) the first step overflows,
  and the scaler must skip it.
- The spatially-correlative loss itself is float32 under autocast: equal to the float32 loss of
  the same 16-bit features within 1e-6.
"""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_dataset
from helpers import LSESIM, TINY
from models import create_model
from models.wrappers import CompiledOrEager
from models.base_model import to_channels_last
from models.sesim import SpatialCorrelativeLoss, self_similarity
from options.train_options import TrainOptions
from util.seeding import seed_everything

AMP_OPTIONS = TINY + ["--batch_size", "2"] + LSESIM
MEASURED = {
    "channels_last": {"loss": 6.0e-6, "fake": 1.7e-7, "grad": 1.6e-3},
    "bf16": {"loss": 9.6e-3, "fake": 2.7e-3, "cos": {"G": 0.935, "D": 0.99994, "F": 0.989}},
    "fp16": {"loss": 3.1e-3, "fake": 2.7e-4, "cos": {"G": 0.9895, "D": 0.999995, "F": 0.99985}},
}


def bounds(kind):
    """Twice each measured deviation (for a cosine c: 1 - 2 (1 - c))."""
    measured = MEASURED[kind]
    out = {key: 2 * value for key, value in measured.items() if key != "cos"}
    out["cos"] = {net: 1 - 2 * (1 - c) for net, c in measured.get("cos", {}).items()}
    return out


BF16, FP16, CHANNELS_LAST = bounds("bf16"), bounds("fp16"), bounds("channels_last")


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("amp")
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB"):
        (root / split).mkdir()
        for i in range(2):
            Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return root


def build(dataroot, extra=()):
    """A seeded model and its data set (float32 unless ``extra``)."""
    opt = TrainOptions(
        AMP_OPTIONS + ["--dataroot", str(dataroot), "--checkpoints_dir", str(dataroot / "ck")] + list(extra)
    ).parse()
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(opt)
    model.setup()
    return model, create_dataset(opt)


def one_step(dataroot, extra=(), init_scale=None):
    """Build a seeded model, train one step on the first batch (one thread); return the model."""
    model, dataset = build(dataroot, extra)
    if init_scale is not None:
        model.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    dataset.set_epoch(1)
    model.start = {n: [p.detach().clone() for p in net.parameters()] for n, net in model.networks().items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.set_input(next(iter(dataset)))
        model.optimize_parameters()
    finally:
        torch.set_num_threads(threads)
    return model


def grads(model):
    return {n: torch.cat([p.grad.flatten() for p in net.parameters()]) for n, net in model.networks().items()}


@pytest.fixture(scope="module")
def reference(dataroot):
    return one_step(dataroot)


def assert_close_step(model, reference, loss_tol, fake_tol):
    losses, ref = model.get_current_losses(), reference.get_current_losses()
    assert losses.keys() == ref.keys() and all(np.isfinite(v) for v in losses.values())
    for name, value in ref.items():
        assert abs(losses[name] - value) <= loss_tol * max(abs(value), 1e-3), name
    assert model.fake_B.dtype == torch.float32
    assert (model.fake_B - reference.fake_B).abs().max().item() <= fake_tol


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode,learned_other", [("cos", False), ("l1", False), ("info", True)])
def test_loss_similarities_stay_float32_under_autocast(dtype, mode, learned_other):
    generator = torch.Generator().manual_seed(0)
    feats = [torch.rand(2, c, s, s, generator=generator).to(dtype) for c, s in ((16, 8), (32, 4))]
    targets = [torch.rand(f.shape, generator=generator).to(dtype) for f in feats]
    others = [torch.rand(f.shape, generator=generator).to(dtype) for f in feats] if learned_other else None
    ids = [torch.randperm(f.shape[2] * f.shape[3], generator=generator)[:10] for f in feats]
    loss = SpatialCorrelativeLoss(mode=mode, patch_size=3)
    with torch.autocast("cpu", dtype=dtype):
        mixed = loss(feats, targets, others, patch_ids=ids)
    as_float = lambda maps: [m.float() for m in maps] if maps is not None else None  # noqa: E731
    exact = loss(as_float(feats), as_float(targets), as_float(others), patch_ids=ids)
    assert mixed.dtype == torch.float32
    assert abs(mixed.item() - exact.item()) <= 1e-6 * max(abs(exact.item()), 1e-3)
    # The check can see 16-bit arithmetic: the bare similarity under autocast is 16-bit and off.
    with torch.autocast("cpu", dtype=dtype):
        bare = self_similarity(feats[0].float(), ids[0], 3, use_norm=False)
    full = self_similarity(feats[0].float(), ids[0], 3, use_norm=False)
    assert bare.dtype == dtype and (bare.float() - full).abs().max() > 1e-4 * full.abs().max()


def test_channels_last_matches_float32(dataroot, reference):
    model = one_step(dataroot, ["--channels_last"])
    for net in (model.netG, model.netD, model.vgg):
        weight = next(p for p in net.parameters() if p.dim() == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last)
    assert model.real_A.is_contiguous(memory_format=torch.channels_last)
    assert_close_step(model, reference, CHANNELS_LAST["loss"], CHANNELS_LAST["fake"])
    for net, g in grads(model).items():
        ref = grads(reference)[net]
        assert (g - ref).abs().max() <= CHANNELS_LAST["grad"] * ref.abs().max(), net
    saved = {k: v for k, v in model.networks()["G"].state_dict().items() if v.dim() == 4}
    model.save_networks("cl")  # files hold ordinary contiguous tensors
    loaded = torch.load(model.net_path("cl", "G"), weights_only=True)
    assert all(loaded[k].is_contiguous() and torch.equal(loaded[k], v) for k, v in saved.items())


def test_channels_last_converts_4d_tensors_only():
    net = torch.nn.Module()
    net.conv, net.linear = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(2, 2)
    net.modulated = torch.nn.Parameter(torch.randn(1, 4, 3, 3, 3))  # 5-D, as in StyleGAN2's convs
    to_channels_last(net)
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last) and not net.conv.weight.is_contiguous()
    assert net.modulated.is_contiguous() and net.linear.weight.is_contiguous()


@pytest.mark.parametrize("extra", [["--amp", "bf16"], ["--amp", "bf16", "--channels_last"]])
def test_bf16_step_is_close_to_float32(dataroot, reference, extra):
    model = one_step(dataroot, extra)
    assert_close_step(model, reference, BF16["loss"], BF16["fake"])
    ref = grads(reference)
    for net, g in grads(model).items():
        assert torch.isfinite(g).all()
        assert torch.nn.functional.cosine_similarity(g, ref[net], dim=0) >= BF16["cos"][net], net


def test_fp16_step_is_close_to_float32_and_scaled(dataroot, reference):
    model = one_step(dataroot, ["--amp", "fp16"], init_scale=256.0)
    assert model.scaler.is_enabled() and model.scaler.get_scale() == 256.0  # no overflow: scale kept
    assert_close_step(model, reference, FP16["loss"], FP16["fake"])
    ref = grads(reference)
    for net, g in grads(model).items():  # gradients are unscaled after the step
        assert torch.nn.functional.cosine_similarity(g, ref[net], dim=0) >= FP16["cos"][net], net
    assert any(not torch.equal(p, s) for p, s in zip(model.networks()["G"].parameters(), model.start["G"]))


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(dataroot):
    model = one_step(dataroot, ["--amp", "fp16"])  # default scale 2^16 overflows here
    assert model.scaler.get_scale() == 2.0**15
    skipped = 0
    for name, net in model.networks().items():
        if not all(torch.isfinite(p.grad).all() for p in net.parameters()):
            skipped += 1
            assert all(torch.equal(p, s) for p, s in zip(net.parameters(), model.start[name])), name
    assert skipped > 0
    state = model.training_state()
    fresh, _ = build(dataroot, ["--amp", "fp16"])
    assert fresh.scaler.get_scale() == 2.0**16
    fresh.load_training_state(state, first_epoch=1)  # the scale is part of the resumable state
    assert fresh.scaler.get_scale() == 2.0**15


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    class BreaksInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("inductor: no kernel for this op")

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    monkeypatch.setattr(torch, "compile", lambda module: lambda inp: BreaksInBackward.apply(module(inp)))
    wrapped = CompiledOrEager(net, "G")
    with pytest.warns(UserWarning, match="torch.compile of net_G failed .*running it eagerly"):
        out = wrapped(x)
    assert wrapped.failed and torch.equal(out, net(x))
    out.sum().backward()  # the real step runs eagerly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(wrapped(x), net(x))  # no second warning

    def unsupported(module):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", unsupported)
    with pytest.warns(UserWarning, match="not supported"):
        wrapped = CompiledOrEager(net, "D")
    assert torch.equal(wrapped(x), net(x)) and list(wrapped.state_dict()) == ["module." + k for k in net.state_dict()]


def test_compile_option_wraps_g_and_d_and_saves_plain_keys(dataroot, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module: calls.append(module) or module)
    model = one_step(dataroot, ["--compile"])
    assert isinstance(model.netG, CompiledOrEager) and isinstance(model.netD, CompiledOrEager)
    assert calls == [model.networks()["G"], model.networks()["D"]]
    model.save_networks("c")
    assert list(torch.load(model.net_path("c", "G"), weights_only=True)) == list(model.networks()["G"].state_dict())
