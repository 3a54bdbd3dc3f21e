"""One conformance suite for every registered model (``models.model_classes``, the template included).

A new ``models/<name>_model.py`` is covered without editing this file: it trains with its own
defaults at the tiny size (plus its class's ``smoke_options`` where its defaults are too large for it).
Each model must:

- run two training steps with finite losses, reporting every loss it declares in ``loss_names``;
- resume bit-exactly on the CPU from its saved networks and training state (optimisers, schedulers,
  GradScaler, image pools);
- save and load its networks (train -> test model) unchanged;
- honour ``--channels_last`` (every 4-D weight and the input images NHWC, losses equal to NCHW's
  within 1e-5) and ``--amp bf16`` (autocast really used: the losses move, and stay finite);
- read its options in the constructor only: setup, the step, ``test``, the schedules, saving, resuming and
  the inference tools' methods run with every read of the options failing;
- through test.py, write every output its class declares.
"""

import argparse
import os
import warnings

import pytest
import torch

import test as test_script
import train as train_script
from helpers import run_script, train_argv, write_every_layout
from models import create_model, find_model_using_name, model_classes
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.seeding import seed_everything

MODELS = sorted(model_classes(include_template=True))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Unaligned (trainA, trainB, testA, testB) and aligned (train, test: A | B side by side) tiny data,
    one image in each folder (as the single-image models need)."""
    return write_every_layout(tmp_path_factory.mktemp("conformance") / "data")


def build(name, root, ck, *extra, save_options=False):
    options = TrainOptions(train_argv(name, root, ck) + list(extra))
    opt = options.parse()
    if save_options:  # opt.json, as train.py writes it: a test run takes the architecture from it
        options.save_options(opt, "train")
    seed_everything(opt.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG
        model = create_model(opt)
    model.setup()
    return model


def batch(step: int, size: int = 32) -> dict:
    generator = torch.Generator().manual_seed(100 + step)
    images = {key: torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for key in ("A", "B")}
    return images | {"A_paths": [f"a{step}.png"]}


def step(model, index: int) -> dict:
    """One training step on batch ``index``, the global RNG seeded by it (as a resumed run restores it)."""
    seed_everything(1000 + index)
    model.set_input(batch(index))
    model.begin_step()
    model.optimize_parameters()
    assert model.end_step() == []
    return {k: v.detach().clone() for k, v in model.loss_parts.items()}


def weights(model) -> dict:
    return {f"{n}.{k}": v.detach().clone() for n, net in model.networks().items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name", MODELS)
def test_two_steps_report_every_declared_loss_finite(name, root, tmp_path):
    model = build(name, root, tmp_path)
    before = weights(model)
    for index in range(2):
        losses = step(model, index)
        assert set(model.loss_names) <= set(losses), f"{name}: declared losses not reported"
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
    assert set(model.get_current_losses()) == set(model.loss_names)
    after = weights(model)
    assert any(not torch.equal(after[k], v) for k, v in before.items() if v.is_floating_point()), "nothing trained"


class LockableOptions(argparse.Namespace):
    """The options, readable until ``lock()``; afterwards reading any option fails (the model may still hold
    the object: it must not read it)."""

    def lock(self):
        object.__setattr__(self, "_locked", True)

    def __getattribute__(self, key):
        if not key.startswith("_") and key != "lock" and object.__getattribute__(self, "__dict__").get("_locked"):
            raise AssertionError(f"read after the constructor: opt.{key}")
        return object.__getattribute__(self, key)


@pytest.mark.parametrize("name", MODELS)
def test_nothing_reads_the_options_after_the_constructor(name, root, tmp_path):
    """Construction reads the options; setup, the step, test, the schedules, saving, resuming and the
    inference tools' methods run with every option read failing."""
    options = TrainOptions(train_argv(name, root, tmp_path))
    parsed = options.parse()
    options.save_options(parsed, "train")  # opt.json, for the test model below
    opt = LockableOptions(**vars(parsed))
    seed_everything(opt.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG
        model = create_model(opt)
    opt.lock()
    with pytest.raises(AssertionError, match="read after the constructor"):
        _ = opt.lr  # the lock works
    model.setup()
    for index in range(2):
        step(model, index)
    model.get_current_losses(), model.get_current_visuals(), model.learning_rates()
    model.update_learning_rate()
    state, files = model.training_state(), model.network_files("1")
    model.save_networks("1")
    model.load_networks("1")
    model.load_training_state(state, first_epoch=2, saved_opt={"lr": 0.0002})
    assert files
    model.test()
    argv = ["--dataroot", str(root), "--checkpoints_dir", str(tmp_path), "--name", "m", "--model", name, "--epoch", "1"]
    test_opt = LockableOptions(**vars(TestOptions(argv + ["--gpu_ids", "-1", "--eval"]).parse()))
    tester = create_model(test_opt)
    test_opt.lock()
    tester.setup(epoch="1")
    tester.eval()
    tester.set_input(batch(0))
    tester.test()
    assert tester.test_outputs() and isinstance(tester.inference_graph(), torch.nn.Module)
    assert tester.get_current_visuals()


@pytest.mark.parametrize("name", MODELS)
def test_resume_is_bit_exact(name, root, tmp_path):
    full = build(name, root, tmp_path)
    for index in range(3):
        step(full, index)
    part = build(name, root, tmp_path)
    step(part, 0)
    files, state = part.network_files("1"), part.training_state()
    resumed = build(name, root, tmp_path)
    for file, net_state in files.items():
        torch.save(net_state, tmp_path / file)
    resumed.save_dir = str(tmp_path)
    resumed.load_networks("1")
    resumed.load_training_state(state, first_epoch=1)
    for index in (1, 2):
        step(resumed, index)
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(full.fake_B, resumed.fake_B)


@pytest.mark.parametrize("name", MODELS)
def test_save_then_load_for_testing(name, root, tmp_path):
    model = build(name, root, tmp_path, save_options=True)
    step(model, 0)
    model.save_networks("latest")
    saved = os.listdir(tmp_path / "m")
    assert {f"latest_net_{n}.pth" for n in model.model_names} <= set(saved)
    assert set(type(model).test_networks) <= set(model.model_names)
    opt = TestOptions(
        ["--dataroot", str(root), "--checkpoints_dir", str(tmp_path), "--name", "m", "--model", name, "--gpu_ids", "-1"]
    ).parse()
    tester = create_model(opt)
    assert tester.model_names == list(type(tester).test_networks)
    tester.setup(epoch="latest")
    trained, loaded = model.networks(), tester.networks()
    for net in tester.model_names:
        a, b = trained[net].state_dict(), loaded[net].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_is_honoured_and_changes_nothing_else(name, root, tmp_path):
    plain = build(name, root, tmp_path)
    nhwc = build(name, root, tmp_path, "--channels_last")
    four_d = {f"{n}.{k}": p for n, net in nhwc.networks().items() for k, p in net.named_parameters() if p.dim() == 4}
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d.values()), [
        k for k, p in four_d.items() if not p.is_contiguous(memory_format=torch.channels_last)
    ][:3]
    losses, losses_nhwc = step(plain, 0), step(nhwc, 0)
    assert nhwc.real_A.is_contiguous(memory_format=torch.channels_last) and not nhwc.real_A.is_contiguous()
    for key, value in losses.items():
        torch.testing.assert_close(losses_nhwc[key], value, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")


@pytest.mark.parametrize("name", MODELS)
def test_amp_bf16_is_used(name, root, tmp_path):
    losses = step(build(name, root, tmp_path), 0)
    model = build(name, root, tmp_path, "--amp", "bf16")
    first_calls: dict[str, bool] = {}  # network -> whether its first call of the step ran under autocast

    def record(net_name):
        def hook(module, args):
            first_calls.setdefault(net_name, torch.is_autocast_enabled("cpu"))

        return hook

    for net_name, net in model.networks().items():
        net.register_forward_pre_hook(record(net_name))
    losses_bf16 = step(model, 0)
    assert first_calls == {n: True for n in model.model_names}, f"{name}: a network runs outside --amp's autocast"
    assert losses.keys() == losses_bf16.keys()
    assert all(torch.isfinite(v).all() for v in losses_bf16.values())
    assert any(not torch.equal(losses[k], losses_bf16[k]) for k in losses), f"{name} ignores --amp bf16"


@pytest.mark.parametrize("name", MODELS)
def test_test_py_writes_every_declared_output(name, root, tmp_path, monkeypatch):
    assert run_script(train_script, train_argv(name, root, tmp_path / "ck") + ["--max_iters", "1"], monkeypatch) == 0
    argv = [
        "--dataroot",
        root,
        "--checkpoints_dir",
        tmp_path / "ck",
        "--name",
        "m",
        "--gpu_ids",
        "-1",
        "--results_dir",
        tmp_path / "res",
        "--num_test",
        "1",
    ]
    assert run_script(test_script, argv, monkeypatch) == 0
    opt = TestOptions([str(a) for a in argv]).parse()
    images = tmp_path / "res" / "m" / "test_latest" / "images"
    for output in find_model_using_name(name).output_names(opt):
        assert len(os.listdir(images / output)) == 1, output
