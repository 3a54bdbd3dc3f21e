"""Building blocks shared by the generators and discriminators.

Normalisation layers are picked by name; the anti-aliased resampling layers (Zhang, "Making
Convolutional Networks Shift-Invariant Again", ICML 2019) blur with a fixed binomial kernel that is
stored as a persistent buffer named ``filt``, so published checkpoints (``model.7.filt``) load as-is.
"""

from math import comb
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormBuilder = Callable[[int], nn.Module]

NORM_LAYERS: dict[str, NormBuilder] = {
    # Per-image statistics only: affine-free and without running stats, as in CycleGAN.
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False),
    "batch": lambda channels: nn.BatchNorm2d(channels, affine=True, track_running_stats=True),
    "none": lambda channels: nn.Identity(),
}

# F.pad's names for the padding types accepted by Downsample/Upsample.
_PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "zero": "constant"}


def get_norm_layer(norm: str) -> NormBuilder:
    """Return a builder ``channels -> nn.Module`` for the normalisation called ``norm``.

    norm: one of ``sorted(NORM_LAYERS)`` ('batch', 'instance', 'none').
    """
    if norm not in NORM_LAYERS:
        raise ValueError(f"unknown norm '{norm}'; valid names: {', '.join(sorted(NORM_LAYERS))}")
    return NORM_LAYERS[norm]


def binomial_filter(filt_size: int) -> torch.Tensor:
    """The separable 2-D binomial blur of side ``filt_size``, summing to 1.

    Returns (filt_size, filt_size) float32, e.g. [1,2,1]⊗[1,2,1]/16 for filt_size 3.
    """
    if filt_size < 1:
        raise ValueError(f"filt_size must be >= 1, got {filt_size}")
    row = torch.tensor([float(comb(filt_size - 1, k)) for k in range(filt_size)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


def _pad_mode(pad: str) -> str:
    if pad not in _PAD_MODES:
        raise ValueError(f"unknown pad type '{pad}'; valid names: {', '.join(sorted(_PAD_MODES))}")
    return _PAD_MODES[pad]


class Downsample(nn.Module):
    """Anti-aliased downsampling: pad, fixed binomial blur, subsample by ``stride``, per channel.

    Input (B, C, H, W); output (B, C, ceil(H / 2), ceil(W / 2)) for the default filt_size 3, stride 2.
    """

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad: str = "reflect") -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.pad_mode = _pad_mode(pad)
        before = (filt_size - 1) // 2
        after = filt_size - 1 - before
        self.pad_sizes = (before, after, before, after)  # (left, right, top, bottom) for F.pad
        kernel = binomial_filter(filt_size)
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))  # (C, 1, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H', W') blurred and subsampled."""
        padded = F.pad(x, self.pad_sizes, mode=self.pad_mode)
        return F.conv2d(padded, self.filt, stride=self.stride, groups=self.channels)


class Upsample(nn.Module):
    """Anti-aliased upsampling: transposed binomial blur with gain ``stride**2``, per channel.

    Zero-insertion upsampling keeps one sample in stride² positions, so the kernel (normalised to sum
    1) is scaled by stride² to keep a constant image constant. Edges are replicate-padded by one pixel
    first so the border is not darkened. Input (B, C, H, W); output exactly (B, C, stride·H, stride·W).
    """

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2, pad: str = "replicate") -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.pad_mode = _pad_mode(pad)
        self.pad_size = (filt_size - 1) // 2
        kernel = binomial_filter(filt_size) * stride**2
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))  # (C, 1, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, stride*H, stride*W)."""
        height, width = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode=self.pad_mode)  # (B, C, H+2, W+2)
        out = F.conv_transpose2d(padded, self.filt, stride=self.stride, padding=1 + self.pad_size, groups=self.channels)
        # The one-pixel edge pad leaves one extra output row/column in front; drop it and whatever
        # the kernel size leaves beyond stride*H.
        return out[:, :, 1 : 1 + self.stride * height, 1 : 1 + self.stride * width]
