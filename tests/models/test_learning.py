"""Learning happens, not only steps: on one fixed batch the LSeSim heads learn their contrastive task
and the generator learns the input's structure.

Both tests run the model's own ``optimize_parameters`` and measure the loss on fixed features with
every position as a query (no sampling noise in the measurement). Measured over training seeds 0-4
(tiny models, random VGG, one thread): after 30 steps the head loss is 0.26-0.32 of its start and the
generator's spatial loss 0.02-0.11 of its start; without learning the ratio is exactly 1. The bounds
(0.6 and 0.5) are outside that run-to-run spread with a wide margin on both sides. They fail if
the heads are frozen, if the head step steps another optimiser, or if the generator step does.
"""

import pytest
import torch

from data import create_dataset
from helpers import LSESIM, TINY, write_images
from models import create_model
from options.train_options import TrainOptions
from util.seeding import seed_everything

STEPS = 30


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    for i, split in enumerate(["trainA", "trainB"]):
        write_images(root / split, 1, seed=i)
    return root


def build(dataroot, extra, seed=0):
    opt = TrainOptions(
        TINY
        + ["--dataroot", str(dataroot), "--checkpoints_dir", str(dataroot / "ck"), "--seed", str(seed), "--no_flip"]
        + extra
    ).parse()
    seed_everything(seed)
    model = create_model(opt)
    model.setup()
    dataset = create_dataset(opt)
    dataset.set_epoch(1)
    return model, next(iter(dataset))


def every_position(feats):
    return [torch.arange(f.shape[2] * f.shape[3]) for f in feats]


def head_loss_curve(dataroot, seed=0):
    """Head loss on the first step's features, before and after ``STEPS`` training steps with G frozen."""
    model, batch = build(dataroot, LSESIM + ["--lambda_GAN", "0"], seed)
    for group in model.optimizer_G.param_groups:
        group["lr"] = 0.0  # G keeps its weights, so fake_B and the features stay those measured
    model.set_input(batch)
    model.forward()
    model._extract_features()
    src, tgt, other = (None if f is None else [t.detach() for t in f] for f in model.spatial_src_tgt_other(True))
    ids = every_position(src)
    measure = lambda: float(model.netF(src, tgt, other, patch_ids=ids))  # noqa: E731
    start = measure()
    for _ in range(STEPS):
        model.set_input(batch)
        model.optimize_parameters()
    return start, measure()


def spatial_loss_curve(dataroot, seed=0):
    """FSeSim spatial loss of G(real_A) vs real_A (every position) before and after ``STEPS`` steps, no GAN."""
    model, batch = build(dataroot, ["--lambda_GAN", "0", "--patch_size", "4", "--patch_nums", "16"], seed)

    def measure():
        model.set_input(batch)
        with torch.no_grad():
            model.forward()
            model._extract_features()
            src, tgt, _ = model.spatial_src_tgt_other(False)
            return float(model.netF(src, tgt, None, patch_ids=every_position(src)))

    start = measure()
    for _ in range(STEPS):
        model.set_input(batch)
        model.optimize_parameters()
    return start, measure()


@pytest.mark.slow
def test_heads_learn_their_contrastive_task(dataroot):
    start, end = head_loss_curve(dataroot)
    assert end < 0.6 * start, (start, end)


def test_head_step_does_not_send_gradient_to_the_generator(dataroot):
    model, batch = build(dataroot, LSESIM)
    model.set_input(batch)
    model.forward()
    model._extract_features()
    loss, _ = model.compute_F_loss()
    grads = torch.autograd.grad(loss, list(model.netG.parameters()), allow_unused=True)
    assert all(g is None for g in grads)  # the target fake_B is detached
    assert any(g is not None for g in torch.autograd.grad(loss, list(model.netF.parameters()), allow_unused=True))


@pytest.mark.slow
def test_generator_learns_the_structure_without_a_gan_loss(dataroot):
    start, end = spatial_loss_curve(dataroot)
    assert end < 0.5 * start, (start, end)
