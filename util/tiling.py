"""Translate an image too large for one pass in overlapping tiles, with whole-image normalisation statistics.

A generator with instance norm normalises every channel by the mean and variance over the whole image.
Translated tile by tile, each tile would get its own statistics and the tiles would differ in colour and
contrast (the seams users of CycleGAN and CUT report). Here every ``nn.InstanceNorm2d`` is given the
statistics of the whole image instead, through forward hooks:

1. a first pass over a copy of the image scaled down to one tile records each norm layer's per-channel mean
   and variance (an estimate: a smaller image has less fine detail);
2. ``passes`` passes over the tiles at full size normalise with the current statistics and record, over
   the part of the image each tile owns (a partition of the image, so every pixel counts once), the sums
   and sums of squares of every norm layer's input: the statistics of the whole image at full size given
   the earlier layers' statistics. Layer k's statistics depend on layers 1..k-1 only, so each pass makes
   one more layer exact and the others closer (a fixed-point iteration);
3. a last pass over the tiles normalises with those statistics and blends the tiles' outputs with cosine
   ramps across their overlaps (sin² up, cos² down: the weights of two neighbours sum to one), so no
   seam is left.

Tiles start at multiples of the generator's downsampling factor, so their stride-2 grids are the whole
image's, and each has a margin (the overlap) whose context a tile at the image's edge gets by the same
padding as the whole image. docs/using_a_model.md gives the measured difference to the untiled output.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.generators import pad_to_multiple
from util.errors import UserError

Forward = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size`` (both multiples of ``multiple``), neighbours
    overlapping by at least ``overlap``; every offset a multiple of ``multiple``, the last ``size - tile``."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1)
    return [int(round(i * step / multiple)) * multiple for i in range(count)]


def ramp_weights(size: int, starts: list[int], tile: int, device: torch.device) -> list[torch.Tensor]:
    """For each tile along one axis, its blending weights over its ``tile`` pixels: 1 where no neighbour
    overlaps, sin² up from 0 (cos² down to 0) across the overlap with the previous (next) neighbour."""
    weights = []
    for i, start in enumerate(starts):
        w = torch.ones(min(tile, size), device=device, dtype=torch.float64)
        if i > 0:
            width = starts[i - 1] + tile - start
            t = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) / width
            w[:width] = torch.sin(t * math.pi / 2) ** 2
        if i + 1 < len(starts):
            width = start + tile - starts[i + 1]
            t = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) / width
            w[-width:] = torch.cos(t * math.pi / 2) ** 2
        weights.append(w)
    return weights


def owned_ranges(size: int, starts: list[int], tile: int, unit: int) -> list[tuple[int, int]]:
    """The part of the axis each tile owns (offsets within the tile): overlaps split in the middle, aligned to
    ``unit``; the parts partition [0, size)."""
    cuts = [0]
    for previous, start in zip(starts[:-1], starts[1:]):
        cuts.append((start + (previous + tile - start) // 2) // unit * unit)
    cuts.append(size)
    return [(cuts[i] - start, cuts[i + 1] - start) for i, start in enumerate(starts)]


def norm_layers(networks: list[nn.Module]) -> list[nn.InstanceNorm2d]:
    """The instance-norm layers that normalise by each image's own statistics; UserError for networks with
    other image-wide normalisation (layer norm, adaptive instance norm), which tiles cannot share."""
    found: list[nn.InstanceNorm2d] = []
    for net in networks:
        for name, module in net.named_modules():
            if isinstance(module, nn.InstanceNorm2d):
                if not (module.track_running_stats and not module.training):
                    found.append(module)
            elif isinstance(module, (nn.GroupNorm, nn.LayerNorm)) or type(module).__name__ == "LayerNorm" \
                    or getattr(module, "norm_name", None) == "adain":
                raise UserError(f"tiling: {type(net).__name__} normalises over the whole image in {name} "
                                f"({type(module).__name__}), which tiles cannot share; translate it whole")
    return found


class _Statistics:
    """Per norm layer: the statistics it normalises with, and the moments recorded in the current pass."""

    def __init__(self, layers: list[nn.InstanceNorm2d]) -> None:
        self.layers = layers
        self.mean: dict[int, torch.Tensor] = {}
        self.var: dict[int, torch.Tensor] = {}
        self.sums: dict[int, list[torch.Tensor]] = {}
        self.owned: Optional[tuple[int, int, int, int, int, int]] = None  # y0, y1, x0, x1 of tile (h, w)
        self.normalise = False

    def hook(self, module: nn.InstanceNorm2d, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """Record the input's moments over the tile's owned part; with ``normalise``, return the input
        normalised by the stored statistics (the affine part applied as the module would)."""
        x = inputs[0]
        key = id(module)
        if self.owned is not None:
            y0, y1, x0, x1, h, w = self.owned
            sy, sx = h // x.shape[-2], w // x.shape[-1]
            part = x[..., y0 // sy:y1 // sy, x0 // sx:x1 // sx].double()
            moments = [part.sum(dim=(-2, -1)), part.square().sum(dim=(-2, -1)), part.shape[-2] * part.shape[-1]]
            if key in self.sums:
                self.sums[key] = [a + b for a, b in zip(self.sums[key], moments)]
            else:
                self.sums[key] = moments
        if not self.normalise:
            return output
        mean, var = self.mean[key], self.var[key]
        out = (x.double() - mean[..., None, None]) * torch.rsqrt(var[..., None, None] + module.eps)
        if module.affine:
            out = out * module.weight.double()[:, None, None] + module.bias.double()[:, None, None]
        return out.to(output.dtype)

    def adopt(self) -> None:
        """Make the recorded moments the statistics to normalise with, and start recording anew."""
        for key, (total, squares, count) in self.sums.items():
            mean = total / count
            self.mean[key], self.var[key] = mean, (squares / count - mean.square()).clamp_min(0.0)
        self.sums = {}


def translate_tiled(forward: Forward, x: torch.Tensor, networks: list[nn.Module], *, tile: int,
                    overlap: Optional[int] = None, passes: int = 1, multiple: int = 4,
                    statistics: str = "image") -> torch.Tensor:
    """``forward`` (a generator's test pass, (N, C, h, w) -> (N, C_out, h, w) in [-1, 1]) applied to ``x``
    (N, C, H, W) in tiles of ``tile`` pixels overlapping by ``overlap`` (default a quarter tile), blended.

    ``statistics``: 'image' gives every instance norm of ``networks`` the whole image's statistics (see the
    module docstring; ``passes`` full-size statistics passes), 'tile' lets each tile use its own (what naive
    tiling does; kept to measure the difference). Returns (N, C_out, H, W).
    """
    if statistics not in ("image", "tile"):
        raise ValueError(f"statistics must be 'image' or 'tile', got {statistics!r}")
    tile = max(multiple * 2, tile // multiple * multiple)
    overlap = tile // 4 if overlap is None else overlap
    overlap = min(max(multiple, overlap // multiple * multiple), tile // 2)
    height, width = x.shape[-2:]
    padded = pad_to_multiple(x, multiple, 2 * multiple)
    size_h, size_w = padded.shape[-2:]
    rows, cols = tile_starts(size_h, tile, overlap, multiple), tile_starts(size_w, tile, overlap, multiple)
    stats = _Statistics(norm_layers(networks) if statistics == "image" else [])
    handles = [layer.register_forward_hook(stats.hook) for layer in stats.layers]
    try:
        if stats.layers:
            small = _downscaled(padded, tile, multiple)
            stats.owned = (0, small.shape[-2], 0, small.shape[-1], *small.shape[-2:])
            forward(small)
            stats.adopt()
            stats.normalise = True
            for _ in range(passes):
                _over_tiles(forward, padded, rows, cols, tile, multiple, stats, None)
                stats.adopt()
        stats.owned = None
        out = _over_tiles(forward, padded, rows, cols, tile, multiple, stats, ramp_weights)
    finally:
        for handle in handles:
            handle.remove()
    return out[:, :, :height, :width]


def _downscaled(image: torch.Tensor, tile: int, multiple: int) -> torch.Tensor:
    """``image`` scaled (area average) so its longer side fits ``tile``, sides multiples of ``multiple``."""
    h, w = image.shape[-2:]
    scale = min(1.0, tile / max(h, w))
    size = [max(2 * multiple, round(s * scale / multiple) * multiple) for s in (h, w)]
    return F.interpolate(image, size=size, mode="area") if size != [h, w] else image


def _over_tiles(forward: Forward, image: torch.Tensor, rows: list[int], cols: list[int], tile: int, multiple: int,
                stats: _Statistics, weights: Optional[Callable]) -> Optional[torch.Tensor]:
    """One pass over the tiles. Recording (``weights`` None): each tile records over the part it owns.
    Writing: returns the tiles' outputs blended with ``weights`` (:func:`ramp_weights`), divided by their sum."""
    size_h, size_w = image.shape[-2:]
    th, tw = min(tile, size_h), min(tile, size_w)
    own_rows, own_cols = owned_ranges(size_h, rows, th, multiple), owned_ranges(size_w, cols, tw, multiple)
    out: Optional[torch.Tensor] = None
    if weights is not None:
        row_w, col_w = weights(size_h, rows, th, image.device), weights(size_w, cols, tw, image.device)
        total = torch.zeros(size_h, size_w, dtype=torch.float64, device=image.device)
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            part = image[..., y:y + th, x:x + tw]
            if weights is None:
                stats.owned = (*own_rows[i], *own_cols[j], th, tw)
                forward(part)
                continue
            result = forward(part).double()
            if out is None:
                out = torch.zeros(*result.shape[:2], size_h, size_w, dtype=torch.float64, device=result.device)
            weight = row_w[i][:, None] * col_w[j][None, :]
            out[..., y:y + th, x:x + tw] += result * weight
            total[y:y + th, x:x + tw] += weight
    return None if out is None else (out / total).float()
