"""Translate an image too large for one pass in overlapping tiles, with the whole image's normalisation statistics.

A ResNet generator with instance norm normalises every channel by its mean and variance over the whole image.
Translated tile by tile, each tile gets its own statistics and the tiles differ in colour and contrast (the
seams CycleGAN's and CUT's users report). Here the tiled result equals the untiled one up to float rounding:

- The generator declares how it can be tiled (its ``inference`` traits, models/networks/traits.py). With
  ``tiling='layers'`` its layer sequence (an nn.Sequential, ``generator.model`` for the ResNet generators) is
  cut into an encoder (down to the lowest resolution), a middle (the residual blocks, at a quarter of the size
  in each direction) and a decoder.
- The middle runs on the whole quarter-size map at once: its instance norms see the whole image as usual. At
  4 ngf channels that map takes as much memory as a full-size map of ngf / 4 channels, a fraction of the
  untiled pass's peak, which holds full-size maps of ngf and 2 ngf channels.
- The encoder and the decoder run in tiles, with exact statistics found layer by layer: with K instance norms
  in a part, pass k (k = 1..K) runs the tiles up to the k-th norm, which normalises with the statistics the
  earlier passes found and then records the sums and sums of squares of its input over the part of the
  image each tile owns (the tiles' owned parts partition the image, so every pixel counts once); the pass
  stops there. The encoder has 3 norms and the decoder 2, and the early stops keep these passes cheap.
  A last pass writes every tile with all statistics fixed.
- A tile reaches ``overlap`` / 2 pixels beyond the part it owns on every side where it has a neighbour, and
  its output is blended in (cosine ramps, sin² up and cos² down, summing to one) over the middle half of
  each overlap only, at least ``overlap`` / 4 pixels inside the tile. When that covers the receptive field
  of the tiled part (9 pixels for the encoder of the ResNet generators, 3 quarter-size pixels for the
  decoder, so the default overlap of 64 does), every pixel used is what the untiled pass computes; a too
  small overlap still leaves no visible seam, only small differences.

Tiles start at multiples of the declared size multiple (4 for the ResNet generators), so their strided grids
are the whole image's, and the image is padded as the generator pads it. A generator that declares
``tiling='forward'`` (no normalisation over the image: StyleGAN2, sinsc) is tiled through its forward pass with
the same blending. One that declares ``tiling=None`` (the mmsc decoder's AdaIN and layer norm), or declares
nothing, is refused with one line. docs/using_a_model.md has the measured differences, time and memory.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import torch
from torch import nn

from inference.statistics import NormStatistics, instance_norms
from inference.traits import traits_of
from models.networks.traits import pad_to_multiple
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


def owned_ranges(size: int, starts: list[int], tile: int, multiple: int) -> list[tuple[int, int]]:
    """The part of the axis each tile owns, as offsets within the tile: overlaps split in the middle (aligned
    to ``multiple``), so the parts partition [0, size)."""
    cuts = [0]
    for previous, start in zip(starts[:-1], starts[1:]):
        cuts.append((start + (previous + tile - start) // 2) // multiple * multiple)
    cuts.append(size)
    return [(cuts[i] - start, cuts[i + 1] - start) for i, start in enumerate(starts)]


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
    tile: int,
    overlap: Optional[int] = None,
    statistics: str = "image",
    autocast: Autocast = contextlib.nullcontext,
    name: str = "the generator",
    known: Optional[NormStatistics] = None,
) -> torch.Tensor:
    """``generator`` applied to ``x`` (N, C, H, W) in [-1, 1] in tiles of ``tile`` pixels overlapping by
    ``overlap`` (default: four times the tiled part's receptive radius plus one, measured, so the blended
    pixels are exact), blended; returns (N, C_out, H, W) float32, as ``generator(x)`` under ``autocast``. A tile is at
    least twice the overlap. ``name`` names the network in messages (a generator that declares no tiling, or
    ``tiling=None``, is refused with one line).

    ``statistics='image'``: every instance norm normalises with the whole image's statistics (exact; see the
    module docstring). ``'tile'``: each tile through the generator with its own statistics, as naive tiling
    does (kept to measure the difference).
    """
    if statistics not in ("image", "tile"):
        raise ValueError(f"statistics must be 'image' or 'tile', got {statistics!r}")
    traits = traits_of(generator, name, "tiled")
    if traits.tiling is None:
        raise UserError(f"tiling: {name} cannot be tiled: {traits.untileable}; translate whole images")
    multiple = traits.size_multiple
    height, width = x.shape[-2:]
    padded = pad_to_multiple(x, multiple, 2 * multiple)
    with torch.no_grad(), autocast():
        if statistics == "tile" or traits.tiling == "forward":
            size, lap = _tile_sizes(generator, padded, tile, overlap, multiple, 1)
            out = _run_tiled(generator, padded, size, lap, multiple, [])
        else:
            sequence = getattr(generator, traits.layers, None)
            if not isinstance(sequence, nn.Sequential):
                raise UserError(
                    f"tiling: {name} declares its layers as .{traits.layers}, which is not an nn.Sequential"
                )
            encoder, middle, decoder = _split(sequence, multiple)
            with known.attached() if known is not None else contextlib.nullcontext():
                size, lap = _tile_sizes(encoder, padded, tile, overlap, multiple, 1)
                low = middle(_run_tiled(encoder, padded, size, lap, multiple, norm_layers(encoder, name), known))
                # the decoder's input is 1/multiple of the image in each direction: so are its tiles
                size, lap = _tile_sizes(decoder, low, tile, overlap, 1, multiple)
                out = _run_tiled(decoder, low, size, lap, 1, norm_layers(decoder, name), known)
    return out[:, :, :height, :width].float()


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
    identities: their statistics are the whole image's, see the module docstring), in input pixels.

    Measured as the support of the gradient of a central block of 4x4 output pixels (every phase of a strided
    or transposed conv; an overestimate by up to 2 pixels, on the safe side), on inputs doubled in size until
    the support stays clear of their edges."""
    handles = [layer.register_forward_hook(lambda module, inputs, output: inputs[0]) for layer in norm_layers(part)]
    parameter = next(part.parameters())
    try:
        size = 16 * multiple
        while True:
            with torch.enable_grad(), torch.autocast(parameter.device.type, enabled=False):
                # random values: at zeros every ReLU would block the gradient
                x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
                x = x.to(parameter.device).requires_grad_(True)
                out = part(x)
                h, w = out.shape[-2] // 2, out.shape[-1] // 2
                out[0, :, h - 2 : h + 2, w - 2 : w + 2].sum().backward()  # a block: every stride phase counts
            rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
            centre = size // 2
            radius = int(max(centre - rows.min(), rows.max() - centre)) if len(rows) else 0
            if radius < centre - 1 or size >= 4096:
                return radius
            size *= 2
    finally:
        for handle in handles:
            handle.remove()


def _split(sequence: nn.Sequential, multiple: int) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """(encoder, middle, decoder): the layers up to the first one whose output is at the lowest resolution
    (1/``multiple``), the following ones at that resolution, and the rest."""
    size = 8 * multiple
    h = torch.zeros(1, _in_channels(sequence), size, size)
    sides = []
    with torch.no_grad():
        for module in sequence:
            h = module(h)
            sides.append(h.shape[-1])
    low = [i for i, side in enumerate(sides) if side * multiple == size]
    if not low:
        raise UserError(f"tiling: the generator's layers never reach 1/{multiple} of the image size")
    first, last = low[0], low[0]
    while last + 1 < len(sides) and sides[last + 1] * multiple == size:
        last += 1
    return sequence[: first + 1], sequence[first + 1 : last + 1], sequence[last + 1 :]


def _in_channels(sequence: nn.Sequential) -> int:
    """The input channels of the first convolution in ``sequence``."""
    return next(m.in_channels for m in sequence.modules() if isinstance(m, nn.Conv2d))


def _run_tiled(
    part: nn.Module,
    image: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    layers: list[nn.InstanceNorm2d],
    known: Optional[NormStatistics] = None,
) -> torch.Tensor:
    """``part`` over ``image`` in tiles, its ``layers`` given the whole image's statistics (one recording pass
    per layer; with ``known`` attached by the caller, those), the outputs blended; the output's size is the
    input's times the part's scale."""
    size_h, size_w = image.shape[-2:]
    th, tw = min(tile, size_h), min(tile, size_w)
    rows, cols = tile_starts(size_h, th, overlap, multiple), tile_starts(size_w, tw, overlap, multiple)
    if known is not None:
        return _blend(part, image, rows, cols, th, tw)
    own_rows, own_cols = owned_ranges(size_h, rows, th, multiple), owned_ranges(size_w, cols, tw, multiple)
    stats = NormStatistics(layers)

    def every_tile(record: Callable[..., None]) -> None:
        for i, y in enumerate(rows):
            for j, x in enumerate(cols):
                record(part, image[..., y : y + th, x : x + tw], (*own_rows[i], *own_cols[j], th, tw))

    stats.gather(every_tile)
    with stats.attached():
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
