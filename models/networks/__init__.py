"""Generators and discriminators, found by name.

``GENERATORS`` / ``DISCRIMINATORS`` map a ``--netG`` / ``--netD`` name to a builder; options use
``choices=sorted(GENERATORS)`` so the command line and the code cannot drift apart. Every generator
builder takes the keyword arguments input_nc, output_nc, ngf, norm, use_dropout, no_antialias,
no_antialias_up; every discriminator builder takes input_nc, ndf, n_layers, norm, no_antialias
(a builder ignores those that do not apply to its architecture).
"""

from functools import partial
from typing import Callable

from torch import nn

from models.networks.discriminators import MultiScaleDiscriminator, NLayerDiscriminator
from models.networks.generators import ResnetGenerator
from models.networks.init import INIT_TYPES, init_weights
from models.networks.layers import NORM_LAYERS
from models.networks.stylegan2 import build_stylegan2_discriminator, build_stylegan2_generator

__all__ = ["DISCRIMINATORS", "GENERATORS", "INIT_TYPES", "NORM_LAYERS", "OWN_INIT", "define_D", "define_G"]


def _multiscale(*, input_nc: int, ndf: int, n_layers: int, norm: str, no_antialias: bool) -> nn.Module:
    """'bimulti': the reference's two-scale D is always strided, so no_antialias does not apply."""
    return MultiScaleDiscriminator(input_nc, ndf=ndf, n_layers=n_layers, norm=norm)


GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "resnet_9blocks": partial(ResnetGenerator, n_blocks=9),
    "resnet_6blocks": partial(ResnetGenerator, n_blocks=6),
    "stylegan2": build_stylegan2_generator,
}

DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    # As in the F-LSeSim reference, 'basic' follows --n_layers_D (default 3: the 70x70 PatchGAN);
    # 'n_layers' is CycleGAN's name for the same network.
    "basic": NLayerDiscriminator,
    "n_layers": NLayerDiscriminator,
    "bimulti": _multiscale,
    "stylegan2": build_stylegan2_discriminator,
}

# Names of networks that initialise their own weights; define_G/define_D leave them as built.
# StyleGAN2 layers draw N(0, 1) weights for their equalised learning rate.
OWN_INIT: frozenset[str] = frozenset({"stylegan2"})


def _lookup(registry: dict[str, Callable[..., nn.Module]], name: str, kind: str) -> Callable[..., nn.Module]:
    if name not in registry:
        raise ValueError(f"unknown {kind} '{name}'; valid names: {', '.join(sorted(registry))}")
    return registry[name]


def define_G(
    net_name: str,
    input_nc: int,
    output_nc: int,
    ngf: int,
    norm: str,
    use_dropout: bool,
    init_type: str,
    init_gain: float,
    no_antialias: bool,
    no_antialias_up: bool,
) -> nn.Module:
    """Build the generator ``net_name`` (a key of GENERATORS), initialise it, return it on the CPU.

    The result maps (B, input_nc, H, W) in [-1, 1] to (B, output_nc, H, W) in [-1, 1] ('stylegan2' does not
    squash its output, as in the reference; image savers clamp).
    """
    builder = _lookup(GENERATORS, net_name, "generator")
    net = builder(
        input_nc=input_nc,
        output_nc=output_nc,
        ngf=ngf,
        norm=norm,
        use_dropout=use_dropout,
        no_antialias=no_antialias,
        no_antialias_up=no_antialias_up,
    )
    return net if net_name in OWN_INIT else init_weights(net, init_type, init_gain)


def define_D(
    net_name: str,
    input_nc: int,
    ndf: int,
    n_layers_D: int,
    norm: str,
    init_type: str,
    init_gain: float,
    no_antialias: bool,
) -> nn.Module:
    """Build the discriminator ``net_name`` (a key of DISCRIMINATORS), initialise it, return it on the CPU.

    The result maps (B, input_nc, H, W) to a (B, 1, H', W') logit map, a list of them for
    multi-scale discriminators, or (B, 1) image logits for 'stylegan2'.
    """
    builder = _lookup(DISCRIMINATORS, net_name, "discriminator")
    net = builder(input_nc=input_nc, ndf=ndf, n_layers=n_layers_D, norm=norm, no_antialias=no_antialias)
    return net if net_name in OWN_INIT else init_weights(net, init_type, init_gain)
