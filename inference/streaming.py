"""Translate an image of any size in memory set by the tile, not the image: layer by layer, through scratch files.

A ResNet generator normalises every channel of every instance norm by its mean and variance over the whole
image, so no part of the image can be finished before the whole image has passed the layer below. The
generator is therefore run one *stage* at a time, a stage being the local layers (convolutions, pads, ReLUs,
the anti-aliased down- and upsampling) between two instance norms:

- :func:`compile_stages` reads the generator's layer sequence (its ``inference`` traits' ``layers``) once and
  cuts it at every instance norm. A residual block (a module declaring ``residual_branch``: its forward is
  ``x + branch(x)``) keeps its input ``x`` as a map of its own, so the block's output can be summed later.
- :func:`run_stages` runs each stage over the image in tiles. A tile reads its input from the maps of the
  stage below, with a margin of the stage's receptive radius (measured, as in inference/tiling.py), applies
  the lower norm with the whole map's statistics as it reads (one multiply-add per value, no norm pass of its
  own), runs the stage's layers, keeps the part of its output the tile owns and writes it to the stage's map,
  adding that part's moments to the map's statistics (Chan's pairwise update, float64). The owned parts
  partition the map, so when the stage is done its statistics are the whole image's, exactly.
- Every convolution runs once per output pixel, plus the margins (a few percent at the default tile size);
  no pass is repeated to find statistics, unlike inference/tiling.py's layer-by-layer gathering.
- Maps larger than ``spill_bytes`` live in scratch files (``folder``, default the system's temporary folder),
  channels last, read and written with ``pread``/``pwrite`` at their offsets: the process holds only the
  tiles. A scratch file is unlinked as soon as it is created, so an interrupted run leaves nothing behind,
  and closed when no later stage reads its map.

At the image's border a tile's edge is the image's, and its layers pad as the whole pass does; elsewhere the
margin keeps every padded value out of the owned part. So the result equals the whole pass up to float
rounding (the order of the sums). The memory a stage needs is its tile's: :func:`tile_plan` picks each stage's
tile so that its working set (the input tile with its margin, every intermediate output of its layers, the
output tile) fits ``budget`` bytes, measured from the stage's layers on a small probe.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Optional

import numpy as np
import torch
from torch import nn

from inference.statistics import instance_norms
from models.networks.layers import ReflectionPad2d
from util.errors import UserError

Autocast = Callable[[], contextlib.AbstractContextManager]


class Unstreamable(Exception):
    """The generator's layers hold something :func:`compile_stages` cannot cut (a norm inside a module that is
    neither an nn.Sequential nor a declared residual block); the message names it."""


# ---- the program ---------------------------------------------------------------------------------


@dataclass
class MapSpec:
    """One map of the program: ``channels`` at ``scale`` times the (padded) image's size; ``stats`` whether
    the next norm needs its moments."""

    channels: int
    scale: Fraction
    stats: bool


@dataclass
class Term:
    """A stage's input is the sum of its terms: map ``map``, normalised by ``norm`` with that map's statistics
    (``norm`` None: as it is)."""

    map: int
    norm: Optional[nn.InstanceNorm2d] = None


@dataclass
class Stage:
    """``out`` = ``ops``(sum of ``terms``), over the image in tiles. ``keep``: a map that also receives the
    summed input (a residual block's input, at the stage's own resolution). ``radius``: how far, in input
    pixels, an input pixel still changes the output; ``align``: the input tiles start at multiples of it."""

    terms: list[Term]
    ops: nn.Sequential
    out: int
    keep: Optional[int] = None
    scale: Fraction = Fraction(1)
    radius: int = 0
    align: int = 1
    bytes_per_pixel: float = 0.0  # working set per input pixel of a tile
    last_use: dict[int, int] = field(default_factory=dict)


@dataclass
class Program:
    """Stages in order over ``maps``; map 0 is the padded image, ``stages[-1].out`` the output."""

    maps: list[MapSpec]
    stages: list[Stage]
    norms: list[nn.InstanceNorm2d]

    def release_after(self) -> dict[int, int]:
        """map -> the index of the last stage that reads it."""
        last: dict[int, int] = {}
        for i, stage in enumerate(self.stages):
            for term in stage.terms:
                last[term.map] = i
        return last


def compile_stages(sequence: nn.Sequential, in_channels: int, multiple: int) -> Program:
    """The stages of ``sequence`` (a generator's layer sequence whose input has ``in_channels`` channels and
    sides that are multiples of ``multiple``), cut at its instance norms; see the module docstring."""
    norms = instance_norms(sequence)
    norm_ids = {id(n) for n in norms}
    maps = [MapSpec(in_channels, Fraction(1), False)]
    stages: list[Stage] = []
    state = {"terms": [Term(0)], "ops": [], "keep": None}

    def finish(stats: bool) -> int:
        """Close the stage being collected; its output becomes a new map."""
        terms, ops = state["terms"], nn.Sequential(*(_channels_last_friendly(m) for m in state["ops"]))
        channels, scale = _probe(ops, maps[terms[0].map], multiple)
        maps.append(MapSpec(channels, scale, stats))
        stages.append(Stage(terms, ops, len(maps) - 1, keep=state["keep"]))
        state.update(terms=[Term(len(maps) - 1)], ops=[], keep=None)
        return len(maps) - 1

    def walk(module: nn.Module, path: str) -> None:
        holds_norm = any(id(m) in norm_ids for m in module.modules())
        if id(module) in norm_ids:
            finish(stats=True)
            state["terms"] = [Term(len(maps) - 1, module)]
        elif not holds_norm:
            state["ops"].append(module)
        elif isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                walk(child, f"{path}.{name}")
        elif isinstance(getattr(module, "residual_branch", None), str):
            walk_residual(module, path)
        else:
            raise Unstreamable(
                f"{path} ({type(module).__name__}) holds instance norms but is neither an nn.Sequential nor a "
                "residual block declaring residual_branch"
            )

    def walk_residual(module: nn.Module, path: str) -> None:
        # the block's input x must be a map of its own, read again by the sum x + branch(x)
        if state["ops"]:
            finish(stats=False)
        if len(state["terms"]) == 1 and state["terms"][0].norm is None:
            x = state["terms"][0].map
        else:  # a pointwise sum or a normalised map: the branch's first stage writes it as it reads it
            x = len(maps)
            maps.append(MapSpec(maps[state["terms"][0].map].channels, maps[state["terms"][0].map].scale, False))
            state["keep"] = x
        walk(getattr(module, module.residual_branch), f"{path}.{module.residual_branch}")
        if state["ops"] or state["keep"] is not None or len(state["terms"]) > 1:
            finish(stats=False)
        state["terms"] = [Term(x), *state["terms"]]

    for name, child in sequence.named_children():
        walk(child, name)
    finish(stats=False)
    program = Program(maps, stages, norms)
    last = program.release_after()
    for i, stage in enumerate(stages):
        stage.last_use = {m: j for m, j in last.items() if j == i}
        _measure(stage, maps, multiple)
    return program


def _channels_last_friendly(module: nn.Module) -> nn.Module:
    """``module``, or for torch's reflection pad (which turns channels-last tiles contiguous) an equal pad that
    keeps them channels last."""
    if type(module) is nn.ReflectionPad2d:
        return ReflectionPad2d(module.padding)
    return module


def _probe(ops: nn.Sequential, source: MapSpec, multiple: int) -> tuple[int, Fraction]:
    """(channels, scale) of ``ops``' output for an input map ``source``, from a probe run."""
    side = 16 * multiple * max(1, int(1 / source.scale))
    side_in = int(side * source.scale)
    with torch.no_grad():
        out = ops(torch.zeros(1, source.channels, side_in, side_in, device=_device(ops)))
    return out.shape[1], source.scale * Fraction(out.shape[-1], side_in)


def _measure(stage: Stage, maps: list[MapSpec], multiple: int) -> None:
    """The stage's scale (output per input pixel), receptive radius, input alignment and working set."""
    source = maps[stage.terms[0].map]
    stage.scale = maps[stage.out].scale / source.scale
    stage.align = max(1, stage.scale.denominator)
    radius = _radius(stage.ops, source.channels, stage.align) if len(stage.ops) else 0
    stage.radius = -(-(radius + 1) // stage.align) * stage.align
    # working set per input pixel, in bytes: the read buffer and the summed input (2 x C_in), every layer's
    # output, and the owned output and its channels-last copy for writing (2 x C_out x scale^2)
    side = 8 * stage.align * 4
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel())) for m in stage.ops.modules()]
    try:
        with torch.no_grad():
            stage.ops(torch.zeros(1, source.channels, side, side, device=_device(stage.ops)))
    finally:
        for hook in hooks:
            hook.remove()
    per_pixel = 2 * source.channels + sum(sizes) / side**2 + 2 * maps[stage.out].channels * float(stage.scale) ** 2
    stage.bytes_per_pixel = 4.0 * per_pixel


def _radius(ops: nn.Sequential, channels: int, align: int) -> int:
    """Input pixels beyond which a change no longer reaches the output: the support of the gradient of one
    output pixel (a 2x2 block where the stage upsamples: every phase), on a probe large enough."""
    device = _device(ops)
    size = 32 * align
    while True:
        x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        x.requires_grad_(True)
        with torch.enable_grad():
            out = ops(x * 1.0)  # a copy: the stage may begin with an in-place ReLU
            h, w = out.shape[-2] // 2, out.shape[-1] // 2
            block = 2 if out.shape[-1] > size else 1
            out[0, :, h : h + block, w : w + block].sum().backward()
        rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        centre = size // 2
        radius = int(max(centre - rows.min(), rows.max() - centre)) if len(rows) else 0
        if radius < centre // 2 or size >= 4096:
            return radius
        size *= 2


def _device(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


# ---- maps ----------------------------------------------------------------------------------------


class Moments:
    """Per-channel count, mean and sum of squared deviations, merged tile by tile (Chan et al.), float64."""

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.mean = torch.zeros(channels, dtype=torch.float64)
        self.m2 = torch.zeros(channels, dtype=torch.float64)

    def add(self, tile: torch.Tensor) -> None:
        """Merge the moments of ``tile`` (C, h, w), channels last or not."""
        flat = tile.permute(1, 2, 0).reshape(-1, tile.shape[0])  # (pixels, C): a view of a channels-last tile
        n = flat.shape[0]
        total_sum, squares = _sums(flat)
        mean = total_sum / n
        m2 = squares - total_sum * mean
        if bool((m2 < 1e-3 * squares).any()):  # the mean dwarfs the spread: sum the centred squares instead
            m2 = _sums(flat - mean)[1]
        mean, m2 = mean.double().cpu(), m2.double().cpu().clamp_min(0.0)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2 + delta.square() * (self.count * n / total)
        self.count = total

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, biased variance) as float32 (C,), as an instance norm computes them."""
        return self.mean.float(), (self.m2 / max(self.count, 1)).float()


def _sums(flat: torch.Tensor, rows: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column sums and sums of squares of ``flat`` (pixels, C), float32: a block of rows at a time, squared
    into a buffer that stays in cache, reduced by a matrix-vector product (torch's column reductions are
    several times slower on this layout)."""
    channels = flat.shape[1]
    total = torch.zeros(1, channels, device=flat.device)
    squares = torch.zeros(1, channels, device=flat.device)
    ones = torch.ones(1, rows, device=flat.device)
    buffer = torch.empty(rows, channels, device=flat.device)
    for start in range(0, flat.shape[0], rows):  # blocks of rows, not pixels
        block = flat[start : start + rows]
        count = block.shape[0]
        torch.mul(block, block, out=buffer[:count])
        total.addmm_(ones[:, :count], block)
        squares.addmm_(ones[:, :count], buffer[:count])
    return total[0], squares[0]


class MemoryMap:
    """A (C, H, W) float32 map held in memory, channels last (or wrapping a tensor without copying)."""

    def __init__(self, tensor: torch.Tensor, stats: bool = False) -> None:
        self.tensor = tensor  # (1, C, H, W)
        self.channels, self.height, self.width = tensor.shape[1:]
        self.moments = Moments(self.channels) if stats else None

    def read(self, y0: int, y1: int, x0: int, x1: int, device: torch.device) -> torch.Tensor:
        part = self.tensor[..., y0:y1, x0:x1].to(device, torch.float32)
        return part.clone(memory_format=torch.channels_last)  # a copy: the caller normalises it in place

    def write(self, tile: torch.Tensor, y0: int, x0: int) -> None:
        self.tensor[..., y0 : y0 + tile.shape[-2], x0 : x0 + tile.shape[-1]] = tile

    def close(self) -> None:
        self.tensor = torch.empty(0)


class Scratch:
    """Scratch files and read buffers, reused: on this kind of machine first touching fresh memory or fresh file
    pages costs several times more than the copy itself (measured: 0.4 against 3.5 GB/s for a 250 MB write),
    so a map's file goes back to the pool when its last reader is done, and a tile's buffer is reused for
    the next tile of the same size. Every file is unlinked when made: an interrupted run leaves nothing."""

    def __init__(self, folder: Optional[str]) -> None:
        self.folder = folder
        self.files: list[tuple[int, int]] = []  # (size in bytes, fd), free
        self.buffers: dict[tuple[int, ...], np.ndarray] = {}  # (owner id, *shape) -> buffer

    def file(self, size: int) -> int:
        """A scratch file of at least ``size`` bytes."""
        fits = [entry for entry in self.files if entry[0] >= size]
        if fits:
            entry = min(fits)
            self.files.remove(entry)
            return entry[1]
        if self.files:  # grow the largest free one rather than keep both
            entry = max(self.files)
            self.files.remove(entry)
            os.ftruncate(entry[1], size)
            return entry[1]
        try:
            fd, path = tempfile.mkstemp(prefix="sesim-map-", suffix=".f32", dir=self.folder)
            os.unlink(path)  # the space is freed when the file is closed, or when the process ends
            os.ftruncate(fd, size)
        except OSError as exc:
            raise UserError(
                f"scratch: cannot make a {size / 2**30:.1f} GiB scratch file in "
                f"{self.folder or tempfile.gettempdir()}: {exc.strerror or exc}; name another folder"
            ) from exc
        return fd

    def give_back(self, fd: int) -> None:
        self.files.append((os.fstat(fd).st_size, fd))

    def buffer(self, owner: object, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of ``shape`` for ``owner``'s reads, the same one for the same owner and shape (each
        read is used up before the owner's next one)."""
        key = (id(owner), *shape)
        if key not in self.buffers:
            self.buffers[key] = np.empty(shape, np.float32)
        return self.buffers[key]

    def forget_buffers(self) -> None:
        self.buffers = {}

    def close(self) -> None:
        for _, fd in self.files:
            os.close(fd)
        self.files, self.buffers = [], {}


class FileMap:
    """A (C, H, W) float32 map in a scratch file, channels last ((H, W, C) rows): a band of whole rows is one
    read straight into a channels-last tile, and a band's owned rows one write."""

    def __init__(self, channels: int, height: int, width: int, scratch: Scratch, stats: bool = False) -> None:
        self.channels, self.height, self.width = channels, height, width
        self.moments = Moments(channels) if stats else None
        self.scratch = scratch
        self.fd = scratch.file(channels * height * width * 4)

    def _offset(self, y: int, x: int) -> int:
        return (y * self.width + x) * self.channels * 4

    def read(self, y0: int, y1: int, x0: int, x1: int, device: torch.device) -> torch.Tensor:
        rows = self.scratch.buffer(self, (y1 - y0, x1 - x0, self.channels))
        if x0 == 0 and x1 == self.width:
            _read_fully(self.fd, memoryview(rows).cast("B"), self._offset(y0, 0))
        else:
            for r in range(y1 - y0):  # one read per row of the tile, not per pixel
                _read_fully(self.fd, memoryview(rows[r]).cast("B"), self._offset(y0 + r, x0))
        return torch.from_numpy(rows).permute(2, 0, 1)[None].to(device)  # (1, C, h, w), channels last

    def write(self, tile: torch.Tensor, y0: int, x0: int) -> None:
        rows = tile[0].permute(1, 2, 0).to("cpu", torch.float32)  # (h, w, C): a view of a channels-last tile
        rows = rows.contiguous().numpy()
        if x0 == 0 and rows.shape[1] == self.width:
            _write_fully(self.fd, memoryview(rows).cast("B"), self._offset(y0, 0))
        else:
            for r in range(rows.shape[0]):
                _write_fully(self.fd, memoryview(rows[r]).cast("B"), self._offset(y0 + r, x0))

    def close(self) -> None:
        if self.fd >= 0:
            self.scratch.give_back(self.fd)
            self.fd = -1


def _read_fully(fd: int, buffer: memoryview, offset: int) -> None:
    while len(buffer):
        got = os.preadv(fd, [buffer[: 1 << 30]], offset)
        if got <= 0:
            raise OSError(f"scratch file ended at offset {offset}")
        buffer, offset = buffer[got:], offset + got


def _write_fully(fd: int, buffer: memoryview, offset: int) -> None:
    while len(buffer):
        done = os.pwritev(fd, [buffer[: 1 << 30]], offset)
        buffer, offset = buffer[done:], offset + done


# ---- running -------------------------------------------------------------------------------------


def tile_plan(program: Program, budget: int, height: int, width: int) -> list[tuple[int, int]]:
    """Each stage's input tile (rows, columns, without margins) for a ``height`` x ``width`` image and a working
    set of at most ``budget`` bytes: bands of whole rows where at least ``4 x margin`` rows fit (every scratch
    read is then one run per channel), squares otherwise. A UserError (one line) when even the smallest square
    tile (four times its margin) does not fit."""
    plan = []
    for stage in program.stages:
        scale = program.maps[stage.terms[0].map].scale
        h, w, r, align = int(height * scale), int(width * scale), stage.radius, stage.align
        least = max(4 * r, 8 * align)
        rows = int(budget / (stage.bytes_per_pixel * (w + 2 * r))) - 2 * r
        rows = rows // align * align  # tiles start on the stage's stride grid
        if rows >= min(least, h):
            plan.append((min(rows, h), w))
            continue
        side = (int(math.sqrt(budget / stage.bytes_per_pixel)) - 2 * r) // align * align
        if side < least:
            need = (least + 2 * r) ** 2 * stage.bytes_per_pixel
            raise UserError(
                f"max_memory: {budget / 2**20:.0f} MiB left for tiles, but the generator's smallest tile needs "
                f"{need / 2**20:.0f} MiB; allow more memory"
            )
        plan.append((side, side))
    return plan


def run_stages(
    program: Program,
    image: torch.Tensor,
    *,
    budget: int,
    map_bytes: int = 0,
    folder: Optional[str] = None,
    autocast: Autocast = contextlib.nullcontext,
    known: Optional[dict[int, tuple[torch.Tensor, torch.Tensor]]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> torch.Tensor:
    """The program over ``image`` (1, C, H, W) float32 (sides multiples of the generator's size multiple):
    (1, C_out, H', W') float32 on ``image``'s device. ``budget``: bytes of tile working set (:func:`tile_plan`);
    ``map_bytes``: bytes of maps that may stay in memory at once (the others go to scratch files in ``folder``;
    on a GPU every map stays on the device).
    ``known``: norm id -> (mean, var) that the norms use instead of the image's (a clip's statistics;
    inference/video.py). ``progress(n)``: called with the number of tiles done after each tile."""
    device = image.device
    height, width = image.shape[-2:]
    sides = tile_plan(program, budget, height, width)
    maps: dict[int, object] = {0: MemoryMap(image)}
    scratch = Scratch(folder)
    try:
        for index, (stage, side) in enumerate(zip(program.stages, sides)):
            spec = program.maps[stage.out]
            out_h, out_w = int(height * spec.scale), int(width * spec.scale)
            last = index == len(program.stages) - 1
            held = sum(m.tensor.numel() * 4 for k, m in maps.items() if k and isinstance(m, MemoryMap))
            maps[stage.out] = _new_map(spec, out_h, out_w, device, scratch, map_bytes - held, last)
            if stage.keep is not None:
                held = sum(m.tensor.numel() * 4 for k, m in maps.items() if k and isinstance(m, MemoryMap))
                kept = program.maps[stage.keep]
                maps[stage.keep] = _new_map(kept, out_h, out_w, device, scratch, map_bytes - held, False)
            _run_stage(stage, maps, side, autocast, known or {}, progress)
            scratch.forget_buffers()
            for m in stage.last_use:
                if m != 0:
                    maps.pop(m).close()
        return maps[program.stages[-1].out].tensor.contiguous()
    finally:
        for m, held in maps.items():
            if m != 0 and m != program.stages[-1].out:
                held.close()
        scratch.close()


def _new_map(spec: MapSpec, h: int, w: int, device, scratch: Scratch, room: int, output: bool):
    """The stage's output map: in memory if it is the output, on a GPU, or within ``room`` bytes."""
    if output or device.type != "cpu" or spec.channels * h * w * 4 <= room:
        layout = torch.contiguous_format if output else torch.channels_last
        return MemoryMap(torch.empty(1, spec.channels, h, w, device=device, memory_format=layout), stats=spec.stats)
    return FileMap(spec.channels, h, w, scratch, stats=spec.stats)


def tiles(size: int, side: int) -> Iterable[tuple[int, int]]:
    """[start, end) ranges of ``side`` covering [0, size) (the last one shorter)."""
    return ((start, min(start + side, size)) for start in range(0, size, side))


def _run_stage(stage: Stage, maps: dict, side: tuple[int, int], autocast: Autocast, known: dict, progress) -> None:
    """One stage over the image: every output tile computed once from its input tile and margin."""
    first = maps[stage.terms[0].map]
    in_h, in_w = first.height, first.width
    out, keep = maps[stage.out], maps.get(stage.keep) if stage.keep is not None else None
    scale, r = stage.scale, stage.radius
    device = out.tensor.device if isinstance(out, MemoryMap) else torch.device("cpu")
    normalise = [_norm_of(term, maps, known, device) for term in stage.terms]
    for y0, y1 in tiles(in_h, side[0]):
        for x0, x1 in tiles(in_w, side[1]):
            ry0, ry1, rx0, rx1 = max(0, y0 - r), min(in_h, y1 + r), max(0, x0 - r), min(in_w, x1 + r)
            source = None
            for term, (scale_by, shift) in zip(stage.terms, normalise):
                values = maps[term.map].read(ry0, ry1, rx0, rx1, device)
                if scale_by is not None:
                    torch.addcmul(shift, values, scale_by, out=values)
                source = values if source is None else source.add_(values)
            if keep is not None:
                keep.write(source[..., y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0], y0, x0)
            with torch.no_grad(), autocast(), torch.profiler.record_function(f"stage{stage.out}"):
                result = stage.ops(source) if len(stage.ops) else source
            oy, ox = int((y0 - ry0) * scale), int((x0 - rx0) * scale)
            owned = result[..., oy : oy + int((y1 - y0) * scale), ox : ox + int((x1 - x0) * scale)].float()
            if out.moments is not None:
                out.moments.add(owned[0])
            out.write(owned, int(y0 * scale), int(x0 * scale))
            if progress is not None:
                progress(1)


def _norm_of(term: Term, maps: dict, known: dict, device: torch.device) -> tuple:
    """(scale, shift), each (1, C, 1, 1) on ``device``, that apply ``term.norm`` with the map's statistics (or
    the ``known`` ones); (None, None) for a plain term."""
    if term.norm is None:
        return None, None
    norm = term.norm
    if id(norm) in known:
        mean, var = (t.reshape(-1).float().cpu() for t in known[id(norm)])
    else:
        mean, var = maps[term.map].moments.mean_var()
    scale = torch.rsqrt(var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight.detach().float().cpu()
        shift = norm.bias.detach().float().cpu() - mean * scale
    else:
        shift = -mean * scale
    return scale[None, :, None, None].to(device), shift[None, :, None, None].to(device)
