"""Translate an image too large for one pass in tiles, with the whole image's normalisation statistics.

A ResNet generator with instance norm normalises every channel by its mean and variance over the whole
image. Translated tile by tile, each tile gets its own statistics and the tiles differ in colour and contrast
(the seams CycleGAN's and CUT's users report). Here the tiled result equals the untiled one up to float
rounding:

- A generator declaring ``tiling='layers'`` (its ``inference`` traits, models/networks/traits.py) is run
  stage by stage by inference/streaming.py: every layer in tiles, the middle too, each instance norm with
  the statistics of its whole input, gathered while the layer below was written; the maps between stages
  stay in memory as far as the budget allows and go to scratch files beyond it. Memory is set by the tile,
  not the image, and every convolution runs once (plus the tiles' margins).
- A generator that declares ``tiling='forward'`` (no normalisation over the image: StyleGAN2, sinsc) is tiled
  through its forward pass: a tile reaches ``overlap`` / 2 pixels beyond the part it owns on every side where
  it has a neighbour, and its output is blended in (cosine ramps, sin² up and cos² down, summing to one)
  over the middle half of each overlap only, at least ``overlap`` / 4 pixels inside the tile. When that covers
  the receptive field, every pixel used is what the untiled pass computes.
- ``statistics='tile'`` runs any generator that way, each tile with its own statistics, as naive tiling does
  (kept to measure the difference).

Tiles start at multiples of the declared size multiple (4 for the ResNet generators), so their strided grids
are the whole image's, and the image is padded as the generator pads it. One that declares ``tiling=None``
(the mmsc decoder's AdaIN and layer norm), or declares nothing, is refused with one line.
docs/using_a_model.md has the measured differences, time and memory.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import torch
from torch import nn

from inference.statistics import NormStatistics, instance_norms
from inference.streaming import TILE_BYTES, Program, Unstreamable, program_for, support_radius, translate_streamed
from inference.traits import traits_of
from models.networks.traits import InferenceTraits, pad_to_multiple
from util.errors import UserError

Autocast = Callable[[], contextlib.AbstractContextManager]


def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size`` (both multiples of ``multiple``), neighbours
    overlapping by at least ``overlap``; every offset a multiple of ``multiple``, the last ``size - tile``."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1)
    return [int(round(i * step / multiple)) * multiple for i in range(count)]


def ramp_weights(size: int, starts: list[int], tile: int) -> list[torch.Tensor]:
    """For each tile along one axis, its blending weights over its ``tile`` pixels. Where two neighbours
    overlap, the weights cross over the middle half of the overlap (sin² up for the later tile, cos² down for
    the earlier: they sum to one); the outer quarters belong to the tile they are deeper in, so no tile's
    pixels within a quarter overlap of its edge (where its padding shows) count."""
    weights = []
    for i, start in enumerate(starts):
        w = torch.ones(min(tile, size))
        if i > 0:
            _ramp(w, starts[i - 1] + tile - start, rising=True)
        if i + 1 < len(starts):
            _ramp(w, start + tile - starts[i + 1], rising=False)
        weights.append(w)
    return weights


def _ramp(w: torch.Tensor, overlap: int, rising: bool) -> None:
    """Set the first (``rising``) or last ``overlap`` entries of ``w``: 0, a sin² ramp over the middle half, 1."""
    quarter, band = overlap // 4, overlap - 2 * (overlap // 4)
    t = (torch.arange(band) + 0.5) / band
    ramp = torch.cat([torch.zeros(quarter), torch.sin(t * math.pi / 2) ** 2, torch.ones(quarter)])
    if rising:
        w[:overlap] = ramp
    else:
        w[len(w) - overlap :] = ramp.flip(0)


def norm_layers(net: nn.Module, name: str = "the generator") -> list[nn.InstanceNorm2d]:
    """The instance norms of ``net`` that normalise by each image's own statistics, in order. A torch norm that
    tiles cannot share (group or layer norm) in a network that declared ``tiling='layers'`` is a UserError
    naming it (``name``: the network, for the message)."""
    for path, module in net.named_modules():
        if isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
            raise UserError(
                f"tiling: {name} normalises over the whole image in {path or 'itself'}, which tiles "
                "cannot share, though it declares tiling='layers'; translate whole images"
            )
    return instance_norms(net)


def translate_tiled(
    generator: nn.Module,
    x: torch.Tensor,
    *,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    statistics: str = "image",
    autocast: Autocast = contextlib.nullcontext,
    name: str = "the generator",
    known: Optional[NormStatistics] = None,
    budget: Optional[int] = None,
    map_bytes: int = 0,
    folder: Optional[str] = None,
) -> torch.Tensor:
    """``generator`` applied to ``x`` (N, C, H, W) in [-1, 1] in tiles; returns (N, C_out, H, W) float32, as
    ``generator(x)`` under ``autocast`` (``x`` uint8 in [0, 255], sides multiples of the size multiple: uint8 out,
    through inference/streaming.py's byte maps). ``name`` names the network in messages (a generator that declares no
    tiling, or ``tiling=None``, is refused with one line).

    ``statistics='image'``: every instance norm normalises with the whole image's statistics (exact; see the
    module docstring), or with ``known`` ones (a clip's). For a ``tiling='layers'`` generator the tiles are
    squares of ``tile`` pixels if given, else sized for ``budget`` bytes of working set (default
    inference/streaming.py's ``TILE_BYTES``), with ``map_bytes`` of maps kept in memory and the rest in scratch
    files in ``folder``. ``'tile'``: each tile through the generator with its own statistics, as naive tiling
    does. Forward tiling (and ``'tile'``) use tiles of ``tile`` pixels (default 512) overlapping by ``overlap``
    (default: four times the receptive radius plus one, measured, so the blended pixels are exact).
    """
    if statistics not in ("image", "tile"):
        raise ValueError(f"statistics must be 'image' or 'tile', got {statistics!r}")
    traits = traits_of(generator, name, "tiled")
    if traits.tiling is None:
        raise UserError(f"tiling: {name} cannot be tiled: {traits.untileable}; translate whole images")
    multiple = traits.size_multiple
    height, width = x.shape[-2:]
    if x.dtype == torch.uint8 and (height % multiple or width % multiple or statistics != "image"):
        raise ValueError(f"a uint8 image is streamed as it is: its sides must be multiples of {multiple}")
    padded = x if x.dtype == torch.uint8 else pad_to_multiple(x, multiple, 2 * multiple)
    if statistics == "tile" or traits.tiling == "forward":
        with torch.no_grad(), autocast():
            size, lap = _tile_sizes(generator, padded, tile or 512, overlap, multiple, 1)
            out = _run_tiled(generator, padded, size, lap, multiple)
    else:
        program = streamable(generator, traits, padded.shape[1], name)
        if program is None:
            raise UserError(
                f"tiling: {name} declares its layers as .{traits.layers}, which is not an nn.Sequential of "
                "layers, nn.Sequentials and residual blocks"
            )
        stats = None
        if known is not None:
            stats = {id(layer): known.known[id(layer)] for layer in known.layers if id(layer) in known.known}
        out = translate_streamed(
            program,
            padded,
            budget=budget or TILE_BYTES,
            map_bytes=map_bytes,
            side=tile,
            folder=folder,
            autocast=autocast,
            known=stats,
        )
    out = out[:, :, :height, :width]
    return out if out.dtype == torch.uint8 else out.float()


def streamable(
    generator: nn.Module, traits: InferenceTraits, in_channels: int, name: str = "the generator"
) -> Optional[Program]:
    """The stage program of a ``tiling='layers'`` generator (inference/streaming.py), or None when its layers
    are not an nn.Sequential that program can be cut from. A group or layer norm is a UserError (``norm_layers``)."""
    sequence = getattr(generator, traits.layers, None)
    if traits.tiling != "layers" or not isinstance(sequence, nn.Sequential):
        return None
    norm_layers(sequence, name)
    try:
        return program_for(sequence, in_channels, traits.size_multiple)
    except Unstreamable:
        return None


def _tile_sizes(
    part: nn.Module, image: torch.Tensor, tile: int, overlap: Optional[int], multiple: int, scale: int
) -> tuple[int, int]:
    """(tile, overlap) in ``image``'s pixels (``scale`` image pixels to one of the input's), aligned to
    ``multiple``; the default overlap is four (receptive radius of ``part`` + 1), and a tile is at least twice it."""
    lap = -(-overlap // scale) if overlap is not None else 4 * (receptive_radius(part, image.shape[1], multiple) + 1)
    lap = -(-max(lap, multiple) // multiple) * multiple
    size = max(2 * lap, 2 * multiple, -(-tile // scale) // multiple * multiple)
    return size, lap


def receptive_radius(part: nn.Module, channels: int, multiple: int) -> int:
    """How many pixels away an input pixel still changes ``part``'s output (its instance norms counted as
    identities: their statistics are the whole image's), in input pixels: :func:`support_radius` of a central
    block of 4x4 output pixels (every phase of a strided or transposed conv; an overestimate by up to 2
    pixels, on the safe side)."""
    handles = [layer.register_forward_hook(lambda module, inputs, output: inputs[0]) for layer in norm_layers(part)]
    try:
        return support_radius(part, channels, 16 * multiple, block=4)
    finally:
        for handle in handles:
            handle.remove()


def _run_tiled(part: nn.Module, image: torch.Tensor, tile: int, overlap: int, multiple: int) -> torch.Tensor:
    """``part`` over ``image`` in tiles, each with its own normalisation statistics where it has any, the outputs
    blended; the output's size is the input's times the part's scale."""
    size_h, size_w = image.shape[-2:]
    th, tw = min(tile, size_h), min(tile, size_w)
    rows, cols = tile_starts(size_h, th, overlap, multiple), tile_starts(size_w, tw, overlap, multiple)
    return _blend(part, image, rows, cols, th, tw)


def _blend(part: nn.Module, image: torch.Tensor, rows: list[int], cols: list[int], th: int, tw: int) -> torch.Tensor:
    """Every tile's output, weighted by :func:`ramp_weights` (at the output's resolution) and normalised."""
    size_h, size_w = image.shape[-2:]
    out: Optional[torch.Tensor] = None
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            result = part(image[..., y : y + th, x : x + tw]).float()
            if out is None:
                scale = result.shape[-1] / tw  # output pixels per input pixel (4 up, 1/4 down)
                oh, ow, oth, otw = round(size_h * scale), round(size_w * scale), result.shape[-2], result.shape[-1]
                out_rows, out_cols = [round(r * scale) for r in rows], [round(c * scale) for c in cols]
                row_w, col_w = ramp_weights(oh, out_rows, oth), ramp_weights(ow, out_cols, otw)
                out = torch.zeros(*result.shape[:2], oh, ow, device=result.device)
                total = torch.zeros(oh, ow, device=result.device)
            weight = (row_w[i][:, None] * col_w[j][None, :]).to(result.device)
            oy, ox = out_rows[i], out_cols[j]
            out[..., oy : oy + oth, ox : ox + otw] += result * weight
            total[oy : oy + oth, ox : ox + otw] += weight
    return out / total
