"""Generators and discriminators, found by name.

``GENERATORS`` / ``DISCRIMINATORS`` map a ``--netG`` / ``--netD`` name to a builder; options use
``choices=sorted(GENERATORS)`` so the command line and the code cannot drift apart. Every generator
builder takes the keyword arguments input_nc, output_nc, ngf, norm, use_dropout, no_antialias,
no_antialias_up; every discriminator builder takes input_nc, ndf, n_layers, norm, no_antialias
(a builder ignores those that do not apply to its architecture).

Build with the keyword-only :func:`build_generator` / :func:`build_discriminator`; a model reads its
options into them with :func:`generator_settings` / :func:`discriminator_settings`. ``define_G`` /
``define_D`` are the positional forms CycleGAN, CUT and F-LSeSim scripts call.
"""

import argparse
from functools import partial
from typing import Any, Callable

from torch import nn

from models.networks.discriminators import MultiScaleDiscriminator, NLayerDiscriminator
from models.networks.generators import ResnetGenerator
from models.networks.init import INIT_TYPES, init_weights
from models.networks.layers import NORM_LAYERS
from models.networks.stylegan2 import build_stylegan2_discriminator, build_stylegan2_generator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "NORM_LAYERS",
    "OWN_INIT",
    "build_discriminator",
    "build_generator",
    "define_D",
    "define_G",
    "discriminator_settings",
    "generator_settings",
]


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


def build_generator(
    *,
    kind: str,
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    use_dropout: bool = False,
    init_type: str = "xavier",
    init_gain: float = 0.02,
    no_antialias: bool = False,
    no_antialias_up: bool = False,
) -> nn.Module:
    """Build the generator ``kind`` (a key of GENERATORS), initialise it, return it on the CPU.

    The result maps (B, input_nc, H, W) in [-1, 1] to (B, output_nc, H, W) in [-1, 1] ('stylegan2' does not
    squash its output, as in the reference; image savers clamp). The defaults are the options' defaults.
    """
    builder = _lookup(GENERATORS, kind, "generator")
    net = builder(
        input_nc=input_nc,
        output_nc=output_nc,
        ngf=ngf,
        norm=norm,
        use_dropout=use_dropout,
        no_antialias=no_antialias,
        no_antialias_up=no_antialias_up,
    )
    return net if kind in OWN_INIT else init_weights(net, init_type, init_gain)


def build_discriminator(
    *,
    kind: str,
    input_nc: int = 3,
    ndf: int = 64,
    n_layers: int = 3,
    norm: str = "instance",
    init_type: str = "xavier",
    init_gain: float = 0.02,
    no_antialias: bool = False,
) -> nn.Module:
    """Build the discriminator ``kind`` (a key of DISCRIMINATORS), initialise it, return it on the CPU.

    The result maps (B, input_nc, H, W) to a (B, 1, H', W') logit map, a list of them for
    multi-scale discriminators, or (B, 1) image logits for 'stylegan2'.
    """
    builder = _lookup(DISCRIMINATORS, kind, "discriminator")
    net = builder(input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, no_antialias=no_antialias)
    return net if kind in OWN_INIT else init_weights(net, init_type, init_gain)


def generator_settings(opt: argparse.Namespace) -> dict[str, Any]:
    """:func:`build_generator`'s keywords from the options (``--netG``, ``--ngf``, ``--normG`` or ``--norm``, ...):
    A -> B, ``--input_nc`` to ``--output_nc``."""
    return {
        "kind": opt.netG,
        "input_nc": opt.input_nc,
        "output_nc": opt.output_nc,
        "ngf": opt.ngf,
        "norm": opt.norm or opt.normG,
        "use_dropout": not opt.no_dropout,
        "init_type": opt.init_type,
        "init_gain": opt.init_gain,
        "no_antialias": opt.no_antialias,
        "no_antialias_up": opt.no_antialias_up,
    }


def discriminator_settings(opt: argparse.Namespace, input_nc: int) -> dict[str, Any]:
    """:func:`build_discriminator`'s keywords from the options (``--netD``, ``--ndf``, ``--n_layers_D``,
    ``--normD`` or ``--norm``, ...) for a discriminator of ``input_nc``-channel images."""
    return {
        "kind": opt.netD,
        "input_nc": input_nc,
        "ndf": opt.ndf,
        "n_layers": opt.n_layers_D,
        "norm": opt.norm or opt.normD,
        "init_type": opt.init_type,
        "init_gain": opt.init_gain,
        "no_antialias": opt.no_antialias,
    }


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
    """:func:`build_generator` with the published code bases' positional arguments."""
    return build_generator(
        kind=net_name,
        input_nc=input_nc,
        output_nc=output_nc,
        ngf=ngf,
        norm=norm,
        use_dropout=use_dropout,
        init_type=init_type,
        init_gain=init_gain,
        no_antialias=no_antialias,
        no_antialias_up=no_antialias_up,
    )


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
    """:func:`build_discriminator` with the published code bases' positional arguments."""
    return build_discriminator(
        kind=net_name,
        input_nc=input_nc,
        ndf=ndf,
        n_layers=n_layers_D,
        norm=norm,
        init_type=init_type,
        init_gain=init_gain,
        no_antialias=no_antialias,
    )
