"""DRN-D segmentation networks (Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017).

Built so that the Cityscapes models published with the DRN code (``drn_d_22_cityscapes.pth``,
``drn_d_38_cityscapes.pth``, ``drn_d_105``; http://go.yf.io/drn-cityscapes-models) load as they
are: a ``base`` of nine stages (stem, two conv stages, four residual stages with dilation 2 and 4
instead of further striding, two de-gridding conv stages), a 1x1 ``seg`` classifier at 1/8
resolution and a fixed bilinear ``up`` (grouped transposed conv, x8). Inputs are normalised with
:data:`evaluations.segmentation.DRN_MEAN` / ``DRN_STD``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from util.checkpoint import safe_load
from util.errors import UserError

# name -> (residual block, blocks or convs per stage 1..8)
DRN_CONFIGS = {
    "drn_d_22": ("basic", (1, 1, 2, 2, 2, 2, 1, 1)),
    "drn_d_38": ("basic", (1, 1, 3, 4, 6, 3, 1, 1)),
    "drn_d_54": ("bottleneck", (1, 1, 3, 4, 6, 3, 1, 1)),
    "drn_d_105": ("bottleneck", (1, 1, 3, 4, 23, 3, 1, 1)),
}
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, dilation: int = 1
) -> list[nn.Module]:
    padding = dilation * (kernel // 2)
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strided, both dilated) plus the (projected) input, then ReLU."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1, downsample: Optional[nn.Module] = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in, H, W) -> (B, planes, H / stride, W / stride)."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand x4, plus the (projected) input, then ReLU."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1, downsample: Optional[nn.Module] = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in, H, W) -> (B, 4 planes, H / stride, W / stride)."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


def _residual_stage(
    block: type, in_channels: int, planes: int, count: int, stride: int, dilation: int
) -> nn.Sequential:
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    blocks = [block(in_channels, planes, stride, dilation, downsample)]
    blocks += [block(out_channels, planes, 1, dilation) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


def drn_d_base(name: str) -> tuple[nn.Sequential, int]:
    """The nine feature stages of DRN-D ``name`` (output stride 8) and their output channel count."""
    kind, counts = DRN_CONFIGS[name]
    block = BasicBlock if kind == "basic" else Bottleneck
    stages = [
        nn.Sequential(*_conv_bn_relu(3, CHANNELS[0], 7)),
        nn.Sequential(*_conv_bn_relu(CHANNELS[0], CHANNELS[0], 3)),
        nn.Sequential(*_conv_bn_relu(CHANNELS[0], CHANNELS[1], 3, stride=2)),
    ]
    channels = CHANNELS[1]
    for planes, count, stride, dilation in (
        (CHANNELS[2], counts[2], 2, 1),
        (CHANNELS[3], counts[3], 2, 1),
        (CHANNELS[4], counts[4], 1, 2),
        (CHANNELS[5], counts[5], 1, 4),
    ):
        stages.append(_residual_stage(block, channels, planes, count, stride, dilation))
        channels = planes * block.expansion
    for planes, count, dilation in ((CHANNELS[6], counts[6], 2), (CHANNELS[7], counts[7], 1)):
        layers: list[nn.Module] = []
        for _ in range(count):
            layers += _conv_bn_relu(channels, planes, 3, dilation=dilation)
            channels = planes
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages), channels


def bilinear_kernel(size: int) -> torch.Tensor:
    """(size, size) bilinear interpolation weights of a transposed conv with stride size / 2."""
    factor = (size + 1) // 2
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    ramp = 1 - (torch.arange(size, dtype=torch.float32) / factor - centre).abs()
    return ramp[:, None] * ramp[None, :]


class DRNSeg(nn.Module):
    """DRN-D segmentation network: images (B, 3, H, W), normalised -> (B, classes, H, W) scores
    (H and W multiples of 8; other sizes give slightly different output sizes)."""

    def __init__(self, name: str = "drn_d_22", classes: int = 19) -> None:
        super().__init__()
        if name not in DRN_CONFIGS:
            raise UserError(f"--seg_net {name}: choose from {', '.join(DRN_CONFIGS)}")
        self.base, channels = drn_d_base(name)
        self.seg = nn.Conv2d(channels, classes, 1)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, groups=classes, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_kernel(16).expand_as(self.up.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) normalised images -> (B, classes, H, W) class scores (pre-softmax)."""
        return self.up(self.seg(self.base(x)))


def load_drn(name: str, weights: str) -> DRNSeg:
    """DRNSeg ``name`` with the state_dict at ``weights`` (plain, ``{'state_dict': ...}`` or with
    DataParallel's ``module.`` prefix), in eval mode. Mismatches are UserErrors naming the file."""
    state = safe_load(weights, "--seg_weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"--seg_weights {weights}: not a state_dict")
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
    net = DRNSeg(name, classes=state["seg.weight"].shape[0] if "seg.weight" in state else 19)
    own = net.state_dict()
    # Files from 2017 lack BatchNorm's num_batches_tracked (unused at eval), and nets trained with
    # torch's own upsampling have no up.weight: both keep this module's values.
    for key in own:
        if key == "up.weight" or key.endswith("num_batches_tracked"):
            state.setdefault(key, own[key])
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise UserError(f"--seg_weights {weights} does not fit --seg_net {name} ({detail})")
    net.load_state_dict(state)
    return net.eval()
