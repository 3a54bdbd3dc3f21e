"""The MUNIT networks (Huang, Liu, Belongie & Kautz, ECCV 2018) for multi-modal translation.

An image of one domain is split into a *content* map (spatial, domain-shared) and a *style* code
(an 8-d vector, domain-specific); a domain's decoder renders any content map with any style code of
its domain. ``MUNITGenerator`` is one domain's auto-encoder:

- content encoder: 7x7 conv, ``n_downsample`` stride-2 4x4 convs doubling the width, ``n_res``
  residual blocks, all with instance norm (no affine parameters) and ReLU;
- style encoder: 7x7 conv, two width-doubling stride-2 4x4 convs, two more at the same width, no
  normalisation, global average pooling, a 1x1 conv to the style code;
- decoder: ``n_res`` residual blocks with adaptive instance norm whose per-channel scales and shifts
  come from an MLP of the style code (``mlp_layers`` layers, ``mlp_dim`` wide), then
  ``n_downsample`` stages of 2x nearest upsampling + 5x5 conv + layer norm + ReLU, and a 7x7 conv
  with tanh.

All convolutions pad by reflection and have biases. Parameter names follow MUNIT's module layout
(``enc_style.model.0.conv.weight``, ``dec.model.0.model.0.model.0.conv.weight``, ``mlp.model.0.fc.weight``,
``cnns.0.0.conv.weight`` ...). The published defaults (MUNIT's configs) are
the defaults here: width 64, style dim 8, 2 downsamplings, 4 residual blocks, an MLP 256 wide with
3 layers, and a discriminator of 4 layers at 3 scales without normalisation.

The decoder takes its AdaIN parameters as an argument instead of writing them into module
attributes (as the published code does), so the networks stay plain functions of their inputs
and work under DDP and torch.compile. The parameter order is the published one: for each AdaIN
layer in order, its ``C`` shifts (means) and then its ``C`` scales (standard deviations).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.traits import InferenceTraits, pad_to_multiple

ACTIVATIONS = ("relu", "lrelu", "tanh", "none")
NORMS = ("instance", "layer", "adain", "none")


class LayerNorm(nn.Module):
    """MUNIT's layer norm: per sample over (C, H, W), ``(x - mean) / (std + eps)``, then per-channel
    ``gamma * x + beta``. The standard deviation is the unbiased one and gamma starts uniform in
    [0, 1), as published (this is not ``nn.LayerNorm``: eps is added to the std, not the variance)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1).view(-1, 1, 1, 1)
        x = (x - mean) / (std + self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def adaptive_instance_norm(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Instance-normalise (B, C, H, W) ``x`` (biased variance), then ``scale * x + shift`` with (B, C) tensors."""
    x = F.instance_norm(x, eps=eps)
    return x * scale[:, :, None, None] + shift[:, :, None, None]


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; valid names: {', '.join(ACTIVATIONS)}")
    return {
        "relu": nn.ReLU(inplace=True),
        "lrelu": nn.LeakyReLU(0.2, inplace=True),
        "tanh": nn.Tanh(),
        "none": nn.Identity(),
    }[name]


class ConvBlock(nn.Module):
    """Reflection pad -> conv (with bias) -> norm -> activation.

    ``norm='adain'`` takes the (B, C) shift and scale as extra arguments of ``forward``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        norm: str = "none",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm '{norm}'; valid names: {', '.join(NORMS)}")
        self.pad = nn.ReflectionPad2d((kernel_size - 1) // 2)  # 3, 4 -> 1; 5 -> 2; 7 -> 3 (as published)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)
        self.norm_name = norm
        self.norm = {"instance": nn.InstanceNorm2d(out_channels), "layer": LayerNorm(out_channels)}.get(
            norm, nn.Identity()
        )
        self.activation = _activation(activation)

    def forward(
        self, x: torch.Tensor, shift: Optional[torch.Tensor] = None, scale: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        x = self.conv(self.pad(x))
        x = adaptive_instance_norm(x, shift, scale) if self.norm_name == "adain" else self.norm(x)
        return self.activation(x)


class ResBlock(nn.Module):
    """x + (3x3 conv-norm-ReLU -> 3x3 conv-norm); with ``norm='adain'`` forward takes (B, 4C) parameters."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.channels = channels
        self.model = nn.Sequential(
            ConvBlock(channels, channels, 3, norm=norm, activation="relu"),
            ConvBlock(channels, channels, 3, norm=norm, activation="none"),
        )

    def forward(self, x: torch.Tensor, adain: Optional[torch.Tensor] = None) -> torch.Tensor:
        if adain is None:
            return x + self.model(x)
        shift1, scale1, shift2, scale2 = adain.split(self.channels, dim=1)
        return x + self.model[1](self.model[0](x, shift1, scale1), shift2, scale2)


class ResBlocks(nn.Module):
    """``n`` residual blocks; with ``norm='adain'`` forward takes their (B, 4Cn) parameters, block by block."""

    def __init__(self, n: int, channels: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(channels, norm) for _ in range(n)])

    def forward(self, x: torch.Tensor, adain: Optional[torch.Tensor] = None) -> torch.Tensor:
        if adain is None:
            return self.model(x)
        for block, params in zip(self.model, adain.split(4 * x.shape[1], dim=1)):
            x = block(x, params)
        return x


class ContentEncoder(nn.Module):
    """(B, C, H, W) image -> (B, ngf * 2**n_downsample, H / 2**n_downsample, W / 2**n_downsample) content."""

    def __init__(self, input_nc: int, ngf: int = 64, n_downsample: int = 2, n_res: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(input_nc, ngf, 7, norm="instance")]
        width = ngf
        for _ in range(n_downsample):
            layers.append(ConvBlock(width, 2 * width, 4, stride=2, norm="instance"))
            width *= 2
        layers.append(ResBlocks(n_res, width, "instance"))
        self.model = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class StyleEncoder(nn.Module):
    """(B, C, H, W) image -> (B, style_dim, 1, 1) style code (4 stride-2 convs, no norm, global pool)."""

    def __init__(self, input_nc: int, ngf: int = 64, style_dim: int = 8, n_downsample: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(input_nc, ngf, 7)]
        width = ngf
        for i in range(n_downsample):
            out = 2 * width if i < 2 else width
            layers.append(ConvBlock(width, out, 4, stride=2))
            width = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, style_dim, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LinearBlock(nn.Module):
    """Linear layer, then an activation."""

    def __init__(self, in_dim: int, out_dim: int, activation: str = "relu") -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.fc(x))


class MLP(nn.Module):
    """(B, in_dim[, 1, 1]) -> (B, out_dim): ``n_layers`` linear layers, ReLU between them."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"the style MLP needs at least 2 layers, got {n_layers}")
        dims = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
        self.model = nn.Sequential(
            *[
                LinearBlock(a, b, "relu" if i < n_layers - 1 else "none")
                for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))


class Decoder(nn.Module):
    """(content, (B, n_adain_params) AdaIN parameters) -> (B, output_nc, H, W) image in [-1, 1]."""

    def __init__(self, in_channels: int, output_nc: int, n_upsample: int = 2, n_res: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [ResBlocks(n_res, in_channels, "adain")]
        width = in_channels
        for _ in range(n_upsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(width, width // 2, 5, norm="layer")]
            width //= 2
        layers.append(ConvBlock(width, output_nc, 7, activation="tanh"))
        self.model = nn.Sequential(*layers)
        self.n_adain_params = 4 * in_channels * n_res  # per block: two layers of C shifts + C scales

    def forward(self, content: torch.Tensor, adain: torch.Tensor) -> torch.Tensor:
        return self.model[1:](self.model[0](content, adain))


class MUNITGenerator(nn.Module):
    """One domain's auto-encoder: content encoder, style encoder, MLP and decoder.

    ``G(x)`` encodes (B, C, H, W) images to ``(content, style)``; ``G(content, style)`` decodes a
    content map with (B, style_dim[, 1, 1]) style codes of this domain to images in [-1, 1]. H and W
    must be multiples of ``2**n_downsample`` for the output to have the input's size.
    """

    def __init__(
        self,
        input_nc: int = 3,
        ngf: int = 64,
        style_dim: int = 8,
        n_downsample: int = 2,
        n_res: int = 4,
        mlp_dim: int = 256,
        mlp_layers: int = 3,
    ) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.n_downsample = n_downsample
        self.enc_style = StyleEncoder(input_nc, ngf, style_dim)
        self.enc_content = ContentEncoder(input_nc, ngf, n_downsample, n_res)
        self.dec = Decoder(self.enc_content.out_channels, input_nc, n_downsample, n_res)
        self.mlp = MLP(style_dim, self.dec.n_adain_params, mlp_dim, mlp_layers)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_content(x), self.enc_style(x)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.dec(content, self.mlp(style))

    def forward(self, *inputs: torch.Tensor) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One tensor: :meth:`encode`; two (content, style): :meth:`decode`. Going through ``forward``
        keeps DDP's gradient synchronisation and --compile in the loop."""
        if len(inputs) == 1:
            return self.encode(inputs[0])
        if len(inputs) == 2:
            return self.decode(*inputs)
        raise TypeError(f"MUNITGenerator takes (images) or (content, style), got {len(inputs)} tensors")


def draw_style_codes(count: int, style_dim: int, seed: int) -> torch.Tensor:
    """(count, style_dim, 1, 1) codes from N(0, I), drawn by a fresh CPU generator seeded with ``seed``: the same
    codes for the same seed wherever they are drawn (the mmsc model's ``n_styles``, its ONNX graph's examples)."""
    return torch.randn(count, style_dim, 1, 1, generator=torch.Generator().manual_seed(seed))


class MUNITTranslation(nn.Module):
    """One direction of MUNIT's test pass as one module: ``encoder``'s content encoder (the source domain's
    generator), then ``decoder``'s MLP and decoder (the target domain's).

    forward(image (N, C, H, W) in [-1, 1], style (N, style_dim, 1, 1)) -> (N, C', H, W) in [-1, 1]; the image is
    padded to a multiple of ``2 ** n_downsample`` and the output cropped back. The inference tools export it
    (its style code is the graph's second input); they cannot tile it (see ``inference``).
    """

    def __init__(self, encoder: MUNITGenerator, decoder: MUNITGenerator) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.inference = InferenceTraits(
            size_multiple=2**encoder.n_downsample,
            tiling=None,
            style_dim=decoder.style_dim,
            untileable="its decoder's adaptive instance norms and layer norms normalise over the whole image",
        )

    def style_codes(self, count: int, seed: int) -> torch.Tensor:
        """``count`` random style codes for ``seed``, as the mmsc model draws them (:func:`draw_style_codes`)."""
        return draw_style_codes(count, self.decoder.style_dim, seed)

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[2], image.shape[3]
        content = self.encoder.enc_content(pad_to_multiple(image, self.inference.size_multiple))
        return self.decoder.decode(content, style)[:, :, :height, :width]


class MultiScaleImageDiscriminator(nn.Module):
    """MUNIT's discriminator: the same PatchGAN at ``n_scales`` scales of the image.

    At each scale: a 4x4 stride-2 conv from ``input_nc`` to ``ndf`` and ``n_layers - 1`` more doubling
    the width, each with leaky ReLU (0.2) and no normalisation, then a 1x1 conv to one logit per
    patch. Between scales the image is average-pooled (3x3, stride 2, padding 1, padding not counted).
    Returns a list of (B, 1, H_s, W_s) logit maps, finest first; the GAN losses of the scales are
    summed. An image needs a side of at least ``2 ** (n_layers + n_scales - 1)`` (64 by default).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 4, n_scales: int = 3) -> None:
        super().__init__()
        self.min_size = 2 ** (n_layers + n_scales - 1)
        self.cnns = nn.ModuleList([self._patchgan(input_nc, ndf, n_layers) for _ in range(n_scales)])
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _patchgan(input_nc: int, ndf: int, n_layers: int) -> nn.Sequential:
        layers: list[nn.Module] = [ConvBlock(input_nc, ndf, 4, stride=2, activation="lrelu")]
        width = ndf
        for _ in range(n_layers - 1):
            layers.append(ConvBlock(width, 2 * width, 4, stride=2, activation="lrelu"))
            width *= 2
        layers.append(nn.Conv2d(width, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, net in enumerate(self.cnns):
            if index:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs
