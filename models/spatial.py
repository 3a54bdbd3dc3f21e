"""The spatially-correlative loss as models use it: its flags, the frozen VGG16 and the loss (with
the LSeSim heads) built from them, and the VGG batch packing.

Every model with the spatial loss (``sc``, ``sinsc``, ``mmsc``) adds :func:`add_spatial_options` to its
flags, builds ``vgg, netF = build_spatial_loss(...)`` once, and computes the features of a step's
images with :func:`vgg_features`: one VGG pass over all of them, split back per name. The VGG16 and
the loss themselves are in models/sesim.py.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

import torch

from models.sesim import LAYER_NAMES, SpatialCorrelativeLoss, VGG16Features, VGGWeightsError
from util.errors import UserError


def parse_attn_layers(value: str) -> list[int]:
    """'4,7,9' -> [4, 7, 9]; UserError for anything outside 0-12."""
    try:
        layers = [int(v) for v in str(value).replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise UserError(f"--attn_layers {value}: give comma-separated VGG16 layer indices 0-12") from None
    bad = [i for i in layers if not 0 <= i < len(LAYER_NAMES)]
    if bad or not layers:
        raise UserError(f"--attn_layers {value}: indices must be in 0-12 (0 = relu1_1 ... 12 = relu5_3; default 4,7,9)")
    return layers


def add_spatial_options(g: argparse._ArgumentGroup) -> argparse._ArgumentGroup:
    """The flags of the spatially-correlative loss and its VGG16, shared by every model that uses it."""
    g.add_argument(
        "--attn_layers",
        default="4,7,9",
        help="VGG16 layers (0-12) of the spatial loss: 4,7,9 = relu3_1, relu4_1, relu4_3",
    )
    g.add_argument("--patch_nums", type=int, default=256, help="query locations per layer (<= 0: all)")
    g.add_argument("--patch_size", type=int, default=64, help="local key window; global when >= the map")
    g.add_argument(
        "--loss_mode", default="cos", choices=["cos", "l1", "info"], help="how the self-similarity maps are compared"
    )
    g.add_argument("--use_norm", action="store_true", help="cosine similarity and L1 instead of tanh and SmoothL1")
    g.add_argument("--learned_attn", action="store_true", help="LSeSim: learn 1x1 heads contrastively")
    g.add_argument("--T", type=float, default=0.07, help="temperature of the contrastive head loss")
    g.add_argument("--lambda_spatial", type=float, default=10.0, help="weight of the spatial loss")
    g.add_argument(
        "--vgg_weights",
        default="imagenet",
        help="imagenet (hub cache; scripts/download_vgg16.py), a path, or random (smoke tests)",
    )
    return g


def needs_other(opt: Any) -> bool:
    """Whether a step needs the features of the 'other' image (rot180 of the other domain's real):
    the learned heads train on it, and ``--loss_mode info`` contrasts against it. ``opt``: the options or
    a model's config with ``learned_attn`` and ``loss_mode``."""
    return bool(opt.learned_attn or opt.loss_mode == "info")


def build_spatial_loss(
    opt: argparse.Namespace, attn_layers: list[int], device: torch.device, extra_layers: Iterable[int] = frozenset()
) -> tuple[VGG16Features, SpatialCorrelativeLoss]:
    """The one frozen VGG16 (``attn_layers`` plus ``extra_layers``) and the loss over ``attn_layers``
    (with its LSeSim heads under ``--learned_attn``), from the :func:`add_spatial_options` flags; a
    missing weights file is a UserError."""
    try:
        vgg = VGG16Features(layers=sorted(set(attn_layers) | set(extra_layers)), weights=opt.vgg_weights).to(device)
    except (VGGWeightsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    channels = [vgg.out_channels[vgg.layers.index(i)] for i in attn_layers]
    loss = SpatialCorrelativeLoss(
        mode=opt.loss_mode,
        patch_nums=opt.patch_nums,
        patch_size=opt.patch_size,
        use_norm=opt.use_norm,
        learned=opt.learned_attn,
        T=opt.T,
        in_channels=channels,
    )
    return vgg, loss.to(device)


def rot180(x: torch.Tensor) -> torch.Tensor:
    """Rotate (B, C, H, W) images by 180 degrees (flip H and W): the 'other' image of the head step."""
    return torch.flip(x, dims=(2, 3))


def vgg_features(
    vgg: VGG16Features, images: dict[str, torch.Tensor], layers: Iterable[int] | None = None
) -> dict[str, list[torch.Tensor]]:
    """name -> the VGG maps of ``images[name]`` (one per layer of ``vgg``, or per VGG layer index in
    ``layers``), from ONE VGG pass over all the images concatenated in the dict's order.

    Gradients flow as the caller's grad mode says: real images go through under ``torch.no_grad()``,
    translations with gradients. The images may have different batch sizes.
    """
    maps = vgg(torch.cat(list(images.values())))
    pick = range(len(maps)) if layers is None else [vgg.layers.index(i) for i in layers]
    out, start = {}, 0
    for name, batch in images.items():
        n = batch.shape[0]
        out[name] = [maps[i][start : start + n] for i in pick]
        start += n
    return out
