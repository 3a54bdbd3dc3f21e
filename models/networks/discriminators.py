"""PatchGAN discriminators (Isola et al. 2017) and their two-scale variant.

The layer order inside ``NLayerDiscriminator.model`` is part of the checkpoint format: published
``net_D`` files name their tensors ``model.<index>.*`` (see tests/fixtures/checkpoint_keys_sc.txt).
"""

import torch
from torch import nn

from models.networks.layers import Downsample, get_norm_layer

_KERNEL = 4
_PADDING = 1


def patchgan_layers(input_nc: int, ndf: int, n_layers: int, norm: str, no_antialias: bool) -> list[nn.Module]:
    """The PatchGAN layer list: n_layers halvings, one stride-1 conv block, a 1-channel conv.

    With anti-aliasing each halving is conv4x4 s1 → [norm] → LeakyReLU → blur-downsample (ceil(h/2)
    after the conv's h-1); without it, conv4x4 s2 → [norm] → LeakyReLU (floor(h/2)). The first block
    has no norm. Channels double per block up to 8·ndf.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    norm_layer = get_norm_layer(norm)
    use_bias = norm == "instance"
    layers: list[nn.Module] = []
    channels_prev, channels = input_nc, ndf
    for i in range(n_layers):
        stride = 2 if no_antialias else 1
        # The first conv has no norm after it and always keeps its bias.
        layers.append(
            nn.Conv2d(channels_prev, channels, _KERNEL, stride=stride, padding=_PADDING, bias=use_bias or i == 0)
        )
        if i > 0:
            layers.append(norm_layer(channels))
        layers.append(nn.LeakyReLU(0.2, True))
        if not no_antialias:
            layers.append(Downsample(channels))
        channels_prev, channels = channels, ndf * min(2 ** (i + 1), 8)
    layers += [
        nn.Conv2d(channels_prev, channels, _KERNEL, stride=1, padding=_PADDING, bias=use_bias),
        norm_layer(channels),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(channels, 1, _KERNEL, stride=1, padding=_PADDING),
    ]
    return layers


class NLayerDiscriminator(nn.Module):
    """PatchGAN: one real/fake logit per overlapping patch (70×70 patches for n_layers 3).

    Args:
        input_nc: image channels.
        ndf: channels of the first conv.
        n_layers: number of halving blocks (3 gives the 70×70 PatchGAN).
        norm: 'instance', 'batch' or 'none'.
        no_antialias: strided convs instead of conv + blur-downsample.
    """

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance", no_antialias: bool = False
    ) -> None:
        super().__init__()
        self.model = nn.Sequential(*patchgan_layers(input_nc, ndf, n_layers, norm, no_antialias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc, H, W) in [-1, 1] -> (B, 1, H', W') unbounded logits.

        For n_layers 3 with anti-aliasing H' = c(c(c(H-1)-1)-1)-2 with c(h) = ceil(h/2); without it
        H' = f(f(f(H))) - 2 with f(h) = floor(h/2). Either way H, W >= 24.
        """
        return self.model(x)


class MultiScaleDiscriminator(nn.Module):
    """Two PatchGANs: one on the image, one with ndf/2 on a 2× average-pooled copy (BicycleGAN's D).

    Like the reference's 'bimulti' discriminator it always uses strided convs, and its scales are
    stored as ``model0`` and ``model1`` so the reference's checkpoints load.

    Args:
        input_nc: image channels.
        ndf: channels of the first conv at full scale; the half scale uses round(ndf / 2).
        n_layers: halving blocks per scale.
        norm: 'instance', 'batch' or 'none'.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        self.model0 = nn.Sequential(*patchgan_layers(input_nc, ndf, n_layers, norm, no_antialias=True))
        self.model1 = nn.Sequential(*patchgan_layers(input_nc, round(ndf / 2), n_layers, norm, no_antialias=True))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, input_nc, H, W) in [-1, 1] -> [(B, 1, H0, W0), (B, 1, H1, W1)] logits, full scale first.

        The half scale sees ceil(H/2) rows, so H, W >= 47 for n_layers 3.
        """
        return [self.model0(x), self.model1(self.down(x))]
