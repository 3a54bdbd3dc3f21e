"""ResNet generators (Johnson et al. 2016, as used by CycleGAN / CUT / F-LSeSim).

The layer order inside ``ResnetGenerator.model`` is part of the checkpoint format: published
``net_G`` files name their tensors ``model.<index>.*`` (see tests/fixtures/checkpoint_keys_sc.txt).
"""

from typing import Sequence

import torch
from torch import nn

from models.networks.layers import Downsample, ReplicationPad2d, Upsample, get_norm_layer
from models.networks.traits import InferenceTraits, pad_to_multiple

# Two stride-2 stages, so sizes must be multiples of 4; at least 8 keeps the bottleneck map >= 2
# pixels, which the residual blocks' reflection padding needs.
_SIZE_MULTIPLE = 4
_MIN_SIZE = 8


class ResnetBlock(nn.Module):
    """Residual block: x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x).

    Input and output (B, dim, H, W) with H, W >= 2 (reflection padding).
    """

    def __init__(self, dim: int, padding_type: str, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        layers: list[nn.Module] = []
        for second in (False, True):
            layers += _block_padding(padding_type)
            conv_padding = 1 if padding_type == "zero" else 0
            layers += [nn.Conv2d(dim, dim, kernel_size=3, padding=conv_padding, bias=use_bias), norm_layer(dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)
        self.residual_branch = "conv_block"  # forward is x + conv_block(x): inference/streaming.py reads this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, dim, H, W) -> (B, dim, H, W)."""
        return x + self.conv_block(x)


def _block_padding(padding_type: str) -> list[nn.Module]:
    """The explicit padding layer for a 3x3 conv ('zero' pads inside the conv instead)."""
    pads = {"reflect": nn.ReflectionPad2d, "replicate": ReplicationPad2d}
    if padding_type == "zero":
        return []
    if padding_type not in pads:
        raise ValueError(f"unknown padding_type '{padding_type}'; valid names: reflect, replicate, zero")
    return [pads[padding_type](1)]


class ResnetGenerator(nn.Module):
    """Encoder (2 downsamplings) → ``n_blocks`` residual blocks → decoder (2 upsamplings) → tanh.

    Args:
        input_nc / output_nc: image channels in and out.
        ngf: channels of the first conv; the bottleneck has 4·ngf.
        norm: 'instance', 'batch' or 'none'; convs carry a bias only with instance norm.
        use_dropout: dropout 0.5 inside the residual blocks.
        n_blocks: number of residual blocks (9 for resnet_9blocks, 6 for resnet_6blocks).
        padding_type: padding inside the residual blocks ('reflect', 'replicate', 'zero').
        no_antialias: strided 3x3 convs instead of conv + blur-downsample.
        no_antialias_up: transposed convs instead of blur-upsample + conv.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        no_antialias: bool = False,
        no_antialias_up: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.input_nc = input_nc
        self.multiple = _SIZE_MULTIPLE  # the size multiple forward pads to
        # instance norms only (batch norm keeps running statistics at test time): tiles can share them
        self.inference = InferenceTraits(size_multiple=_SIZE_MULTIPLE, tiling="layers", layers="model")
        norm_layer = get_norm_layer(norm)
        use_bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            channels = ngf * 2**i
            layers += _down_stage(channels, channels * 2, norm, use_bias, no_antialias)
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ngf * 4, padding_type, norm, use_dropout, use_bias))
        for i in range(2):
            channels = ngf * 2 ** (2 - i)
            layers += _up_stage(channels, channels // 2, norm, use_bias, no_antialias_up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc, H, W) in [-1, 1], any H, W >= 1 -> (B, output_nc, H, W) in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"expected input (B, {self.input_nc}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        out = self.model(pad_to_multiple(x, _SIZE_MULTIPLE, _MIN_SIZE))
        return out[:, :, :height, :width]

    def _check_layers(self, layers: Sequence[int]) -> None:
        bad = [i for i in layers if not 0 <= i < len(self.model)]
        if bad or not layers:
            raise ValueError(
                f"layers {list(layers)}: give indices into the generator's {len(self.model)} "
                f"modules (0-{len(self.model) - 1})"
            )

    def layer_channels(self, layers: Sequence[int]) -> list[int]:
        """Channels of the output of ``self.model[i]`` for each i in ``layers`` (CUT's ``--nce_layers``).

        For resnet_9blocks with ngf 64 and anti-aliasing, layers 0, 4, 8, 12, 16 give 3, 128, 256,
        256, 256: the padded image, the first two convs' outputs and three residual blocks.
        """
        self._check_layers(layers)
        channels, found = self.input_nc, []
        for module in self.model:
            convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
            channels = convs[-1].out_channels if convs else channels
            found.append(channels)
        return [found[i] for i in layers]

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of ``self.model[i]`` for i in ``layers`` (in that order) for the input padded as
        :meth:`forward` pads it; x: (B, input_nc, H, W) -> list of (B, C_i, H_i, W_i). Runs no further
        than the deepest layer asked for."""
        self._check_layers(layers)
        h = pad_to_multiple(x, _SIZE_MULTIPLE, _MIN_SIZE)
        found = {}
        for index, module in enumerate(self.model[: max(layers) + 1]):
            h = module(h)
            if index in layers:
                found[index] = h
        return [found[i] for i in layers]


def _down_stage(in_channels: int, out_channels: int, norm: str, use_bias: bool, no_antialias: bool) -> list[nn.Module]:
    """Halve the resolution: conv3x3 s1 → norm → ReLU → blur-downsample, or conv3x3 s2 → norm → ReLU."""
    stride = 2 if no_antialias else 1
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=use_bias),
        get_norm_layer(norm)(out_channels),
        nn.ReLU(True),
    ]
    if not no_antialias:
        layers.append(Downsample(out_channels))
    return layers


def _up_stage(in_channels: int, out_channels: int, norm: str, use_bias: bool, no_antialias_up: bool) -> list[nn.Module]:
    """Double the resolution: blur-upsample → conv3x3 → norm → ReLU, or transposed conv → norm → ReLU."""
    if no_antialias_up:
        resample: list[nn.Module] = [
            nn.ConvTranspose2d(
                in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias
            )
        ]
    else:
        resample = [
            Upsample(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=use_bias),
        ]
    return resample + [get_norm_layer(norm)(out_channels), nn.ReLU(True)]
