"""GAN objectives, gradient penalty, Gram/style/perceptual terms, and the fake-image pool."""

import math
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from models.losses import GAN_MODES, GANLoss, gradient_penalty, gram_matrix, perceptual_loss, style_loss
from util.image_pool import ImagePool

PRED = [0.5, -1.0, 2.0, 0.0, -0.25, 3.0]


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# Hand formulas, one value per element then averaged: (real, fake, generator) per mode.
HAND = {
    "lsgan": (lambda v: (v - 1) ** 2, lambda v: v**2, lambda v: (v - 1) ** 2),
    "vanilla": (lambda v: -math.log(sigmoid(v)), lambda v: -math.log(1 - sigmoid(v)), lambda v: -math.log(sigmoid(v))),
    "wgangp": (lambda v: -v, lambda v: v, lambda v: -v),
    "hinge": (lambda v: max(0.0, 1 - v), lambda v: max(0.0, 1 + v), lambda v: -v),
    "nonsaturating": (lambda v: softplus(-v), lambda v: softplus(v), lambda v: softplus(-v)),
}


def hand_mean(fn: Callable[[float], float], values: list[float]) -> float:
    return sum(fn(v) for v in values) / len(values)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_gan_loss_matches_hand_formulas(mode: str) -> None:
    assert set(HAND) == set(GAN_MODES)
    loss = GANLoss(mode)
    pred = torch.tensor(PRED, dtype=torch.float64).reshape(1, 1, 2, 3)
    real_fn, fake_fn, gen_fn = HAND[mode]
    assert loss(pred, True).item() == pytest.approx(hand_mean(real_fn, PRED), rel=1e-9)
    assert loss(pred, False).item() == pytest.approx(hand_mean(fake_fn, PRED), rel=1e-9)
    assert loss(pred, True, for_discriminator=False).item() == pytest.approx(hand_mean(gen_fn, PRED), rel=1e-9)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_gan_loss_on_a_list_is_the_sum_over_scales(mode: str) -> None:
    small, large = PRED[:2], PRED[2:]
    maps = [
        torch.tensor(small, dtype=torch.float64).reshape(1, 1, 1, 2),
        torch.tensor(large, dtype=torch.float64).reshape(1, 1, 2, 2),
    ]
    real_fn, fake_fn, _ = HAND[mode]
    for target, fn in ((True, real_fn), (False, fake_fn)):
        expected = hand_mean(fn, small) + hand_mean(fn, large)  # published: sum(losses)
        assert GANLoss(mode)(maps, target).item() == pytest.approx(expected, rel=1e-9)


def test_gan_loss_gradient_and_errors() -> None:
    pred = torch.zeros(2, 1, 3, 3, requires_grad=True)
    GANLoss("lsgan")(pred, True).backward()
    assert torch.allclose(pred.grad, torch.full_like(pred, -2.0 / 18))  # d/dx mean (x-1)^2 at 0
    with pytest.raises(ValueError, match="hinge, lsgan, nonsaturating, vanilla, wgangp"):
        GANLoss("wgan")
    with pytest.raises(ValueError, match="target_is_real=True"):
        GANLoss("hinge")(pred, False, for_discriminator=False)


# Gradient penalty.


class LinearD(nn.Module):
    """D(x) = <w, x> per sample: its input gradient is w everywhere."""

    def __init__(self, shape: tuple[int, ...], seed: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(1)


class SquareD(nn.Module):
    """D(x) = 0.5 <w, x²> per sample: its input gradient is w·x."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(shape, generator=torch.Generator().manual_seed(3)) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x**2 * self.weight).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_d_has_a_closed_form() -> None:
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    net = LinearD((2, 3, 3), seed=0)
    expected = 10.0 * (net.weight.detach().norm().item() - 1.0) ** 2
    assert gradient_penalty(net, real, fake).item() == pytest.approx(expected, rel=1e-5)
    two_scale = LinearD((2, 3, 3), seed=1)
    multi = lambda x: [net(x), two_scale(x)]  # noqa: E731 - a list-output D in one line
    summed = (net.weight + two_scale.weight).detach().norm().item()
    assert gradient_penalty(multi, real, fake, constant=0.5, lambda_gp=2.0).item() == pytest.approx(
        2.0 * (summed - 0.5) ** 2, rel=1e-5
    )


def test_gradient_penalty_on_interpolates_matches_manual_computation() -> None:
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    net = SquareD((1, 4, 4))
    penalty = gradient_penalty(
        net, real, fake, constant=1.0, lambda_gp=10.0, generator=torch.Generator().manual_seed(7)
    )
    alpha = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(7))
    points = alpha * real + (1 - alpha) * fake
    w = net.weight.detach()
    norms = [float(np.sqrt(((w * points[b]).numpy() ** 2).sum())) for b in range(3)]
    expected = 10.0 * np.mean([(n - 1.0) ** 2 for n in norms])
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode,use_real", [("real", True), ("fake", False)])
def test_gradient_penalty_at_real_or_fake_points(mode: str, use_real: bool) -> None:
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    net = SquareD((1, 4, 4))
    points = real if use_real else fake
    w = net.weight.detach()
    norms = (w * points).flatten(1).norm(dim=1)
    expected = (3.0 * ((norms - 1.0) ** 2).mean()).item()
    assert gradient_penalty(net, real, fake, lambda_gp=3.0, mode=mode).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="real, fake, mixed"):
        gradient_penalty(net, real, fake, mode="both")


# Gram matrix, style and perceptual terms.


def test_gram_matrix_matches_numpy_einsum() -> None:
    feat = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    expected = np.einsum("bchw,bdhw->bcd", feat, feat) / (2 * 3 * 4 * 5)  # batch x channels x height x width
    gram = gram_matrix(torch.from_numpy(feat))
    assert gram.shape == (2, 3, 3)
    assert np.allclose(gram.numpy(), expected)


def test_style_loss_sums_l1_of_grams_over_layers() -> None:
    rng = np.random.default_rng(1)
    feats_a = [rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 2, 2))]
    feats_b = [rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 2, 2))]
    expected = 0.0
    for a, b in zip(feats_a, feats_b, strict=True):
        norm = a.shape[0] * a.shape[1] * a.shape[2] * a.shape[3]
        gram_a = np.einsum("bchw,bdhw->bcd", a, a) / norm
        gram_b = np.einsum("bchw,bdhw->bcd", b, b) / norm
        expected += np.abs(gram_a - gram_b).mean()
    to_torch = lambda feats: [torch.from_numpy(f) for f in feats]  # noqa: E731
    assert style_loss(to_torch(feats_a), to_torch(feats_b)).item() == pytest.approx(expected, rel=1e-9)
    assert style_loss(to_torch(feats_a), to_torch(feats_a)).item() == 0.0


def test_perceptual_loss_is_mean_absolute_difference() -> None:
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert perceptual_loss(a, b).item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)
    assert perceptual_loss(a, a).item() == 0.0


# Image pool.


def labelled(values: list[int]) -> torch.Tensor:
    """A batch of (1, 2, 2) images whose every pixel is the image's label."""
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def labels_of(batch: torch.Tensor) -> list[int]:
    return [int(v) for v in batch[:, 0, 0, 0]]


def test_pool_size_zero_returns_the_input() -> None:
    batch = labelled([1, 2])
    assert ImagePool(0).query(batch) is batch


def test_pool_fill_phase_returns_inputs_then_mixes() -> None:
    pool = ImagePool(4)
    assert labels_of(pool.query(labelled([0, 1, 2]))) == [0, 1, 2]
    assert labels_of(pool.query(labelled([3]))) == [3]
    assert len(pool) == 4
    stored = {0, 1, 2, 3}
    swaps = 0
    draws = 2000
    for label in range(4, 4 + draws):
        (out,) = labels_of(pool.query(labelled([label])))
        assert out == label or out in stored
        if out != label:
            swaps += 1
            stored.remove(out)
            stored.add(label)
        assert stored == set(labels_of(torch.stack(pool.images)))
    assert abs(swaps / draws - 0.5) < 0.05


def test_pool_output_is_detached() -> None:
    fake = labelled([1, 2]).requires_grad_(True)
    assert not ImagePool(2).query(fake * 2).requires_grad


def test_pool_state_dict_round_trip_resumes_exactly() -> None:
    pool = ImagePool(3, generator=torch.Generator().manual_seed(5))
    for label in range(10):
        pool.query(labelled([label, label + 100]))
    state = pool.state_dict()
    expected = [labels_of(pool.query(labelled([i, i + 50]))) for i in range(200, 220)]
    restored = ImagePool(3)
    restored.load_state_dict(state)
    assert [labels_of(restored.query(labelled([i, i + 50]))) for i in range(200, 220)] == expected
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(2).load_state_dict(state)
