"""GAN objectives, the WGAN-GP gradient penalty, and the perceptual / style terms.

Discriminator outputs may be a Tensor (one PatchGAN map) or a list of Tensors (multi-scale D); the
losses of the scales are summed, as in the published code.
"""

from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

Prediction = Union[torch.Tensor, Sequence[torch.Tensor]]


def _lsgan(prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    return F.mse_loss(prediction, target)


def _vanilla(prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    return F.binary_cross_entropy_with_logits(prediction, target)


def _wgangp(prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
    return -prediction.mean() if target_is_real else prediction.mean()


def _hinge(prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
    if not for_discriminator:
        # The generator's hinge loss only pushes fakes towards "real".
        if not target_is_real:
            raise ValueError("the generator's hinge loss is defined for target_is_real=True only")
        return -prediction.mean()
    sign = -1.0 if target_is_real else 1.0
    return F.relu(1.0 + sign * prediction).mean()


def _nonsaturating(prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
    return F.softplus(-prediction if target_is_real else prediction).mean()


_GAN_LOSSES: dict[str, Callable[[torch.Tensor, bool, bool], torch.Tensor]] = {
    "lsgan": _lsgan,
    "vanilla": _vanilla,
    "wgangp": _wgangp,
    "hinge": _hinge,
    "nonsaturating": _nonsaturating,
}

GAN_MODES: tuple[str, ...] = tuple(_GAN_LOSSES)


class GANLoss(nn.Module):
    """Adversarial loss of one of GAN_MODES for a discriminator's logits.

    lsgan: mean (x - 1)² for real, mean x² for fake. vanilla: BCE with logits against 1 / 0.
    wgangp: -mean x for real, +mean x for fake. hinge: mean relu(1 - x) for real and mean relu(1 + x)
    for fake when training D, -mean x when training G. nonsaturating: mean softplus(-x) for real,
    mean softplus(x) for fake. Each returns a scalar Tensor.
    """

    def __init__(self, gan_mode: str = "lsgan") -> None:
        super().__init__()
        if gan_mode not in _GAN_LOSSES:
            raise ValueError(f"unknown gan_mode '{gan_mode}'; valid names: {', '.join(sorted(GAN_MODES))}")
        self.gan_mode = gan_mode

    def forward(self, prediction: Prediction, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        """prediction: (B, 1, H', W') logits or a list of such maps (one per scale); returns a scalar,
        the sum of the per-scale losses for a list.

        target_is_real: whether the prediction should be judged real; for_discriminator: False when
        the loss trains the generator (only 'hinge' treats the two differently).
        """
        maps = [prediction] if isinstance(prediction, torch.Tensor) else list(prediction)
        if not maps:
            raise ValueError("GANLoss got an empty list of predictions")
        loss_fn = _GAN_LOSSES[self.gan_mode]
        losses = [loss_fn(p, target_is_real, for_discriminator) for p in maps]
        return torch.stack(losses).sum()


GP_MODES: tuple[str, ...] = ("real", "fake", "mixed")


def gradient_penalty(
    netD: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    constant: float = 1.0,
    lambda_gp: float = 10.0,
    mode: str = "mixed",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty lambda_gp · mean_b (‖∇_x D(x_b)‖₂ - constant)² (Gulrajani et al. 2017).

    real, fake: (B, C, H, W) images (detached here). mode 'mixed' evaluates D at per-sample random
    interpolates x_b = α_b·real_b + (1-α_b)·fake_b with α_b ~ U[0, 1) drawn as
    ``torch.rand(B, 1, 1, 1, generator=generator)`` on the images' device; 'real' / 'fake' at the
    images themselves. A multi-scale D's outputs are summed before differentiating. The graph is kept
    (create_graph) so the penalty trains D. Returns a scalar Tensor.
    """
    if mode not in GP_MODES:
        raise ValueError(f"unknown gradient penalty mode '{mode}'; valid names: {', '.join(GP_MODES)}")
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the same shape")
    real, fake = real.detach(), fake.detach()
    if mode == "real":
        points = real
    elif mode == "fake":
        points = fake
    else:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
        points = alpha * real + (1.0 - alpha) * fake
    points = points.clone().requires_grad_(True)
    output = netD(points)
    maps = [output] if isinstance(output, torch.Tensor) else list(output)
    total = torch.stack([m.sum() for m in maps]).sum()
    (gradients,) = torch.autograd.grad(total, points, create_graph=True)
    # The tiny offset keeps the norm differentiable where the gradient is exactly zero.
    norms = (gradients.flatten(1) + 1e-16).norm(2, dim=1)  # (B,)
    return lambda_gp * ((norms - constant) ** 2).mean()


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """feat: (B, C, H, W) -> (B, C, C) per-image Gram matrices F Fᵀ normalised by B·C·H·W.

    The batch size in the divisor is the published code's: at batch 1 it is the usual C·H·W, and
    at batch B every entry (so the style loss) is B times smaller than at batch 1.
    """
    batch, channels, height, width = feat.shape
    flat = feat.reshape(batch, channels, height * width)  # (B, C, HW)
    return torch.bmm(flat, flat.transpose(1, 2)) / (batch * channels * height * width)


def style_loss(feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean absolute difference of Gram matrices; feats_*: lists of (B, C_l, H_l, W_l)."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(
            f"style_loss needs two equally long, non-empty feature lists, got {len(feats_a)} and {len(feats_b)}"
        )
    losses = [F.l1_loss(gram_matrix(a), gram_matrix(b)) for a, b in zip(feats_a, feats_b, strict=True)]
    return torch.stack(losses).sum()


def perceptual_loss(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two (B, C, H, W) feature maps; returns a scalar."""
    return F.l1_loss(feat_a, feat_b)
