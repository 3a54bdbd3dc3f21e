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


def replicate_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, pad, mode='replicate')`` built from slices, ``expand`` and ``cat``.

    x: (..., H, W); pad: (left, right, top, bottom), each >= 0; returns (..., H + top + bottom,
    W + left + right) with the edge rows and columns repeated. Equal to F.pad forward (exactly) and
    backward (up to the order in which a corner's gradients are summed). torch.compile (Inductor)
    cannot use ``aten.replication_pad2d_backward``: it has no lowering, and its meta kernel's strides
    disagree with what the CPU kernel returns, so a compiled backward through F.pad fails; slices
    and ``cat`` lower to plain indexing.
    """
    left, right, top, bottom = pad
    lead = x.shape[:-2]
    width = x.shape[-1]
    x = torch.cat([x[..., :1, :].expand(*lead, top, width), x, x[..., -1:, :].expand(*lead, bottom, width)], dim=-2)
    height = x.shape[-2]
    return torch.cat([x[..., :1].expand(*lead, height, left), x, x[..., -1:].expand(*lead, height, right)], dim=-1)


def reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, pad, mode='reflect')`` for (B, C, H, W) that keeps a channels-last input channels last: one copy
    of ``x`` and its mirrored edges. (torch's reflection pad turns a channels-last input into a contiguous
    copy first, and the next convolution then runs in the slower layout.) pad: (left, right, top, bottom), each
    smaller than the side it pads."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    layout = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) else None
    out = x.new_empty(*x.shape[:-2], h + top + bottom, w + left + right)
    if layout is not None:
        out = out.contiguous(memory_format=layout)
    out[..., top : top + h, left : left + w] = x
    if top:
        out[..., :top, left : left + w] = x[..., 1 : top + 1, :].flip(-2)
    if bottom:
        out[..., top + h :, left : left + w] = x[..., h - 1 - bottom : h - 1, :].flip(-2)
    if left:
        out[..., :left] = out[..., left + 1 : 2 * left + 1].flip(-1)
    if right:
        out[..., left + w :] = out[..., left + w - 1 - right : left + w - 1].flip(-1)
    return out


def pad2d(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """``F.pad(x, pad, mode=mode)`` for (B, C, H, W), with replicate padding by :func:`replicate_pad` and, for a
    channels-last input, reflection padding by :func:`reflect_pad`."""
    if mode == "replicate":
        return replicate_pad(x, pad)
    if mode == "reflect" and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:
        return reflect_pad(x, pad)
    return F.pad(x, pad, mode=mode)


class ReflectionPad2d(nn.Module):
    """``nn.ReflectionPad2d(padding)`` through :func:`pad2d` (channels last stays channels last); no parameters,
    so a checkpoint's keys are the same."""

    def __init__(self, padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad2d(x, self.padding, "reflect")


class ReplicationPad2d(nn.Module):
    """Drop-in for ``nn.ReplicationPad2d(padding)`` that torch.compile can differentiate (see :func:`replicate_pad`)."""

    def __init__(self, padding: int) -> None:
        super().__init__()
        self.padding = (padding,) * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H + 2p, W + 2p)."""
        return replicate_pad(x, self.padding)


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
        padded = pad2d(x, self.pad_sizes, self.pad_mode)
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
        padded = pad2d(x, (1, 1, 1, 1), self.pad_mode)  # (B, C, H+2, W+2)
        out = F.conv_transpose2d(padded, self.filt, stride=self.stride, padding=1 + self.pad_size, groups=self.channels)
        # The one-pixel edge pad leaves one extra output row/column in front; drop it and whatever
        # the kernel size leaves beyond stride*H.
        return out[:, :, 1 : 1 + self.stride * height, 1 : 1 + self.stride * width]
