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

import collections
import concurrent.futures
import contextlib
import math
import os
import tempfile
import weakref
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
Affine = Optional[tuple[torch.Tensor, torch.Tensor]]  # (scale, shift), each (1, C, 1, 1): a norm with known statistics


# What a tile really adds to the peak resident memory, per byte of the tensors counted in _measure: the heap keeps
# freed blocks for reuse, and oneDNN's convolutions allocate their own reorders. Measured as the growth of a child
# process's peak RSS streaming a 1024x1536 image with budgets of 16 to 128 MiB (tests/inference/test_streaming.py):
# 2.4 to 3.1 times the counted bytes.
ALLOCATOR_FACTOR = 3.0


class TooLarge(UserError):
    """An image that cannot be translated within the memory allowed (a UserError: one line); translate.py skips
    the file and goes on with the others."""


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


@dataclass
class Program:
    """Stages in order over ``maps``; map 0 is the padded image, ``stages[-1].out`` the output."""

    maps: list[MapSpec]
    stages: list[Stage]
    norms: list[nn.InstanceNorm2d]
    fused: dict = field(default_factory=dict)  # frozenset of recomputed maps -> fused_stages' stages


def compile_stages(sequence: nn.Sequential, in_channels: int, multiple: int) -> Program:
    """The stages of ``sequence`` (a generator's layer sequence whose input has ``in_channels`` channels and
    sides that are multiples of ``multiple``), cut at its instance norms; see the module docstring."""
    compiler = _Compiler(instance_norms(sequence), in_channels, multiple)
    for name, child in sequence.named_children():
        compiler.walk(child, name)
    compiler.finish(stats=False)
    program = Program(compiler.maps, compiler.stages, compiler.norms)
    for stage in program.stages:
        _measure(stage, program.maps)
    return program


class _Compiler:
    """:func:`compile_stages`' state: the maps and stages so far, and the stage being collected (its input
    ``terms``, its layers ``ops``, the residual input it ``keep``s)."""

    def __init__(self, norms: list[nn.InstanceNorm2d], in_channels: int, multiple: int) -> None:
        self.norms, self.norm_ids, self.multiple = norms, {id(n) for n in norms}, multiple
        self.maps = [MapSpec(in_channels, Fraction(1), False)]
        self.stages: list[Stage] = []
        self.terms, self.ops, self.keep = [Term(0)], [], None

    def finish(self, stats: bool) -> int:
        """Close the stage being collected; its output becomes a new map."""
        ops = nn.Sequential(*(_channels_last_friendly(m) for m in self.ops))
        channels, scale = _probe(ops, self.maps[self.terms[0].map], self.multiple)
        self.maps.append(MapSpec(channels, scale, stats))
        self.stages.append(Stage(self.terms, ops, len(self.maps) - 1, keep=self.keep))
        self.terms, self.ops, self.keep = [Term(len(self.maps) - 1)], [], None
        return len(self.maps) - 1

    def walk(self, module: nn.Module, path: str) -> None:
        if id(module) in self.norm_ids:
            self.terms = [Term(self.finish(stats=True), module)]
        elif not any(id(m) in self.norm_ids for m in module.modules()):
            self.ops.append(module)
        elif isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                self.walk(child, f"{path}.{name}")
        elif isinstance(getattr(module, "residual_branch", None), str):
            self.walk_residual(module, path)
        else:
            raise Unstreamable(
                f"{path} ({type(module).__name__}) holds instance norms but is neither an nn.Sequential nor a "
                "residual block declaring residual_branch"
            )

    def walk_residual(self, module: nn.Module, path: str) -> None:
        """x + branch(x): the block's input x must be a map of its own, read again by the sum."""
        if self.ops:
            self.finish(stats=False)
        if len(self.terms) == 1 and self.terms[0].norm is None:
            x = self.terms[0].map
        else:  # a pointwise sum or a normalised map: the branch's first stage writes it as it reads it
            source = self.maps[self.terms[0].map]
            self.maps.append(MapSpec(source.channels, source.scale, False))
            x = self.keep = len(self.maps) - 1
        self.walk(getattr(module, module.residual_branch), f"{path}.{module.residual_branch}")
        if self.ops or self.keep is not None or len(self.terms) > 1:
            self.finish(stats=False)
        self.terms = [Term(x), *self.terms]


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


def _measure(stage: Stage, maps: list[MapSpec]) -> None:
    """The stage's scale (output per input pixel), receptive radius, input alignment and working set."""
    source = maps[stage.terms[0].map]
    stage.scale = maps[stage.out].scale / source.scale
    stage.align = max(1, stage.scale.denominator)
    upsamples = stage.scale > 1  # then a 2x2 block of outputs covers both phases of the transposed stride
    radius = (
        support_radius(stage.ops, source.channels, 32 * stage.align, 2 if upsamples else 1) if len(stage.ops) else 0
    )
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
    stage.bytes_per_pixel = 4.0 * per_pixel * ALLOCATOR_FACTOR


def support_radius(net: nn.Module, channels: int, size: int, block: int = 1) -> int:
    """How many input pixels away from an output pixel a change still reaches it: the support of the gradient
    of a central ``block`` x ``block`` of output pixels (a block covers every phase of a stride), on random
    inputs of ``size`` pixels doubled until the support stays clear of their edges."""
    parameter = next(iter(net.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    while True:
        with torch.enable_grad(), torch.autocast(device.type, enabled=False):
            # random values: at zeros every ReLU would block the gradient
            x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
            x = x.to(device).requires_grad_(True)
            out = net(x * 1.0)  # a copy: the network may begin with an in-place ReLU
            h, w = out.shape[-2] // 2, out.shape[-1] // 2
            half = block // 2
            out[0, :, h - half : h - half + block, w - half : w - half + block].sum().backward()
        rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        centre = size // 2
        radius = int(max(centre - rows.min(), rows.max() - centre)) if len(rows) else 0
        if radius < centre - 1 or size >= 4096:
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

    def read(self, y0: int, y1: int, x0: int, x1: int, device: torch.device, affine: Affine = None) -> torch.Tensor:
        """The region as a new channels-last (1, C, h, w) tensor on ``device``, times ``affine``'s scale plus its
        shift (a norm's, each (1, C, 1, 1)) when given: one pass over the values either way."""
        part = self.tensor[..., y0:y1, x0:x1].to(device, torch.float32)
        if affine is None:
            return part.clone(memory_format=torch.channels_last)  # a copy: the caller may add to it in place
        return torch.addcmul(affine[1], part, affine[0])

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
        self.writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sesim-scratch")
        self.pending: collections.deque = collections.deque()
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
        self.flush()
        self.files.append((os.fstat(fd).st_size, fd))

    def write_later(self, write: Callable[[], None]) -> concurrent.futures.Future:
        """Run ``write`` on the writer thread, so the next tile computes while the kernel copies this one (and
        waits for the disk when the system's dirty-page limit is reached); at most two writes wait, so the tiles
        they hold stay within the budget's margin."""
        while len(self.pending) >= 2:
            self.pending.popleft().result()
        future = self.writer.submit(write)
        self.pending.append(future)
        return future

    def flush(self) -> None:
        """Wait for every write (an error in one is raised here)."""
        while self.pending:
            self.pending.popleft().result()

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
        try:
            self.flush()
        finally:
            self.writer.shutdown(wait=True, cancel_futures=True)
            for _, fd in self.files:
                os.close(fd)
            self.files, self.buffers = [], {}


class ByteMap(MemoryMap):
    """An 8-bit image as a map: tiles are converted as they are read ([0, 255] -> [-1, 1], as data/transforms.py's
    to_tensor does) or written (as util/image_io.py's tensor2im rounds), so a photo's input and output are held
    as bytes, a quarter of their float size."""

    def read(self, y0: int, y1: int, x0: int, x1: int, device: torch.device, affine: Affine = None) -> torch.Tensor:
        part = self.tensor[..., y0:y1, x0:x1].to(device).float().div_(127.5).sub_(1.0)
        part = part.contiguous(memory_format=torch.channels_last)
        return part if affine is None else torch.addcmul(affine[1], part, affine[0])

    def write(self, tile: torch.Tensor, y0: int, x0: int) -> None:
        # float64 keeps the half-way points (e.g. x = 0 -> 127.5) exact before rounding, as tensor2im does
        values = tile.detach().double().nan_to_num(nan=-1.0)
        values = torch.floor((values + 1.0) * 127.5 + 0.5).clamp(0.0, 255.0).to(torch.uint8)
        self.tensor[..., y0 : y0 + tile.shape[-2], x0 : x0 + tile.shape[-1]] = values


class VirtualMap:
    """A map that is not kept: its stage only gathers its statistics (:func:`recomputed`)."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.channels, self.height, self.width = channels, height, width
        self.moments = Moments(channels)

    def write(self, tile: torch.Tensor, y0: int, x0: int) -> None:
        pass

    def close(self) -> None:
        pass


class FileMap:
    """A (C, H, W) float32 map in a scratch file, channels last ((H, W, C) rows): a band of whole rows is one
    read straight into a channels-last tile, and a band's owned rows one write."""

    def __init__(self, channels: int, height: int, width: int, scratch: Scratch, stats: bool = False) -> None:
        self.channels, self.height, self.width = channels, height, width
        self.moments = Moments(channels) if stats else None
        self.scratch = scratch
        self.fd = scratch.file(channels * height * width * 4)
        self.writes: list[concurrent.futures.Future] = []  # queued on the scratch's writer, not yet waited for

    def _offset(self, y: int, x: int) -> int:
        return (y * self.width + x) * self.channels * 4

    def read(self, y0: int, y1: int, x0: int, x1: int, device: torch.device, affine: Affine = None) -> torch.Tensor:
        """As :meth:`MemoryMap.read`; the region is read into a buffer reused for the next tile of this map."""
        for write in self.writes:  # what was written to this map is read back as written
            write.result()
        self.writes = []
        rows = self.scratch.buffer(self, (y1 - y0, x1 - x0, self.channels))
        if x0 == 0 and x1 == self.width:
            _read_fully(self.fd, memoryview(rows).cast("B"), self._offset(y0, 0))
        else:
            for r in range(y1 - y0):  # one read per row of the tile, not per pixel
                _read_fully(self.fd, memoryview(rows[r]).cast("B"), self._offset(y0 + r, x0))
        values = torch.from_numpy(rows).permute(2, 0, 1)[None].to(device)  # (1, C, h, w), channels last
        if affine is not None:
            torch.addcmul(affine[1], values, affine[0], out=values)
        return values

    def write(self, tile: torch.Tensor, y0: int, x0: int) -> None:
        """Queue the write of ``tile`` (1, C, h, w) at (y0, x0) on the scratch's writer thread."""
        rows = tile[0].permute(1, 2, 0).to("cpu", torch.float32)  # (h, w, C): a view of a channels-last tile
        rows = rows.contiguous().numpy()
        fd, offset = self.fd, self._offset(y0, x0)
        row_bytes = self.width * self.channels * 4

        def write() -> None:
            if x0 == 0 and rows.shape[1] == self.width:
                _write_fully(fd, memoryview(rows).cast("B"), offset)
            else:
                for r in range(rows.shape[0]):
                    _write_fully(fd, memoryview(rows[r]).cast("B"), offset + r * row_bytes)

        self.writes = [w for w in self.writes if not w.done()] + [self.scratch.write_later(write)]

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


def tile_plan(
    program: Program,
    budget: int,
    height: int,
    width: int,
    side: Optional[int] = None,
    stages: Optional[list[Stage]] = None,
) -> list[tuple[int, int]]:
    """Each stage's input tile (rows, columns, without margins) for a ``height`` x ``width`` image: squares of
    ``side`` image pixels (scaled to each stage's resolution) when given, else the tile whose working set fits
    ``budget`` bytes with the least margin: a band of whole rows (every scratch read one run) or a square,
    whichever recomputes fewer margin pixels. A UserError (one line) when even the smallest tile (four times
    its margin) does not fit."""
    plan = []
    for stage in stages or program.stages:
        scale = program.maps[stage.terms[0].map].scale
        h, w, r, align = int(height * scale), int(width * scale), stage.radius, stage.align
        if side is not None:
            edge = max(align, int(side * scale) // align * align)
            plan.append((min(edge, h), min(edge, w)))
            continue
        least = max(4 * r, 8 * align)
        rows = (int(budget / (stage.bytes_per_pixel * (w + 2 * r))) - 2 * r) // align * align
        square = (int(math.sqrt(budget / stage.bytes_per_pixel)) - 2 * r) // align * align
        least_rows, least_side = min(least, h), min(least, max(h, w))  # a small map may be one tile
        if rows >= h:
            plan.append((h, w))
        elif square >= least_side and (
            rows < least_rows or (rows + 2 * r) / max(rows, 1) > ((square + 2 * r) / square) ** 2
        ):
            plan.append((min(square, h), min(square, w)))
        elif rows >= least_rows:
            plan.append((rows, w))
        else:
            need = (least + 2 * r) ** 2 * stage.bytes_per_pixel
            raise TooLarge(
                f"max_memory: {budget / 2**20:.1f} MiB left for tiles, but the generator's smallest tile needs "
                f"{need / 2**20:.1f} MiB; allow more memory"
            )
    return plan


def whole_pass_bytes(program: Program, height: int, width: int) -> int:
    """About how many bytes a whole-image pass holds at its peak: the largest stage's working set over the whole
    image plus the residual input it keeps (the same per-pixel measure as the tiles')."""
    peak = 0
    for stage in program.stages:
        pixels = height * width * program.maps[stage.terms[0].map].scale ** 2
        kept = sum(program.maps[t.map].channels for t in stage.terms[1:]) * 4 * pixels
        peak = max(peak, int(stage.bytes_per_pixel * pixels + kept))
    return peak


def run_stages(
    program: Program,
    image: torch.Tensor,
    *,
    budget: int,
    map_bytes: int = 0,
    folder: Optional[str] = None,
    side: Optional[int] = None,
    autocast: Autocast = contextlib.nullcontext,
    known: Optional[dict[int, tuple[torch.Tensor, torch.Tensor]]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> torch.Tensor:
    """The program over ``image`` (1, C, H, W) float32 in [-1, 1] (sides multiples of the generator's size
    multiple): (1, C_out, H', W') float32 on ``image``'s device; for a uint8 image in [0, 255] (a photo's bytes),
    uint8 out, rounded as util/image_io.py's tensor2im rounds. ``budget``: bytes of tile working set
    (:func:`tile_plan`);
    ``map_bytes``: bytes of maps that may stay in memory at once (the others go to scratch files in ``folder``,
    or are recomputed: see :func:`recomputed`; on a GPU every map stays on the device). ``side``: square tiles
    of that many image pixels instead. ``known``: norm id -> (mean, var) that the norms use instead of the
    image's (a clip's statistics; inference/video.py). ``progress(n)``: called with the number of tiles done
    after each tile."""
    device = image.device
    height, width = image.shape[-2:]
    virtual = recomputed(program, height, width, map_bytes) if device.type == "cpu" else frozenset()
    stages = fused_stages(program, virtual)
    sides = tile_plan(program, budget, height, width, side, stages)
    maps: dict[int, object] = {0: ByteMap(image) if image.dtype == torch.uint8 else MemoryMap(image)}
    scratch = Scratch(folder)
    release = {m: i for i, stage in enumerate(stages) for m in (t.map for t in stage.terms)}
    try:
        for index, (stage, side) in enumerate(zip(stages, sides)):
            spec = program.maps[stage.out]
            out_h, out_w = int(height * spec.scale), int(width * spec.scale)
            last = index == len(stages) - 1
            held = sum(m.tensor.numel() * 4 for k, m in maps.items() if k and isinstance(m, MemoryMap))
            if stage.out in virtual:
                maps[stage.out] = VirtualMap(spec.channels, out_h, out_w)
            elif last and image.dtype == torch.uint8:  # bytes in, bytes out
                maps[stage.out] = ByteMap(torch.empty(1, spec.channels, out_h, out_w, dtype=torch.uint8, device=device))
            else:
                maps[stage.out] = _new_map(spec, out_h, out_w, device, scratch, map_bytes - held, last)
            if stage.keep is not None:
                held = sum(m.tensor.numel() * 4 for k, m in maps.items() if k and isinstance(m, MemoryMap))
                kept = program.maps[stage.keep]
                maps[stage.keep] = _new_map(kept, out_h, out_w, device, scratch, map_bytes - held, False)
            _run_stage(stage, maps, side, autocast, known or {}, progress)
            scratch.flush()  # the next stage reads what this one wrote
            scratch.forget_buffers()
            for m in [m for m, i in release.items() if i == index and m != 0]:
                maps.pop(m).close()
        return maps[stages[-1].out].tensor.contiguous()
    finally:
        for m, held in maps.items():
            if m != 0 and m != stages[-1].out:
                held.close()
        scratch.close()


def recomputed(program: Program, height: int, width: int, map_bytes: int) -> frozenset[int]:
    """The maps not kept at all but recomputed by the stage that reads them: full-resolution maps (the widest
    and cheapest to make again, a few convolutions from the image or a half-size map) that do not fit
    ``map_bytes``, read by one stage as its only input. Their stage only gathers their statistics; the reader
    runs it again, in its tiles, before its own layers (docs/using_a_model.md has the cost: a few percent more
    arithmetic, in place of writing and reading the widest maps of all)."""
    readers: dict[int, list[Stage]] = {}
    for stage in program.stages:
        for term in stage.terms:
            readers.setdefault(term.map, []).append(stage)
        if stage.keep is not None:
            readers.setdefault(stage.keep, []).append(stage)
    chosen = set()
    for stage in program.stages[:-1]:
        spec = program.maps[stage.out]
        users = readers.get(stage.out, [])
        if (
            spec.stats
            and spec.scale >= 1
            and spec.channels * height * width * spec.scale**2 * 4 > map_bytes
            and stage.keep is None
            and len(users) == 1
            and len(users[0].terms) == 1
            and users[0].keep is None
        ):
            chosen.add(stage.out)
    return frozenset(chosen)


class FixedNorm(nn.Module):
    """An instance norm applied with statistics set before a stage runs (a recomputed map's, inside a fused
    stage): one multiply-add per value."""

    def __init__(self, term: Term) -> None:
        super().__init__()
        self.term = term
        self.scale, self.shift = torch.ones(1), torch.zeros(1)  # the identity until a stage sets them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift.to(x.dtype), x, self.scale.to(x.dtype))


def fused_stages(program: Program, virtual: frozenset[int]) -> list[Stage]:
    """The program's stages with every reader of a ``virtual`` map fused with that map's stage: its terms, its
    layers, the map's norm (:class:`FixedNorm`), then the reader's layers; margins measured again."""
    if not virtual:
        return program.stages
    if virtual in program.fused:
        return program.fused[virtual]
    producers = {stage.out: stage for stage in program.stages}
    fused: dict[int, Stage] = {}  # map -> the stage (fused as far as needed) that makes it

    def effective(stage: Stage) -> Stage:
        term = stage.terms[0]
        if len(stage.terms) != 1 or term.map not in virtual:
            return stage
        below = fused.get(term.map) or effective(producers[term.map])
        ops = nn.Sequential(*below.ops, FixedNorm(term), *stage.ops)
        merged = Stage(below.terms, ops, stage.out, keep=stage.keep)
        _measure(merged, program.maps)
        return merged

    stages = []
    for stage in program.stages:
        made = effective(stage)
        fused[stage.out] = made
        stages.append(made)
    program.fused[virtual] = stages
    return stages


def _new_map(
    spec: MapSpec, h: int, w: int, device: torch.device, scratch: Scratch, room: int, output: bool
) -> "MemoryMap | FileMap":
    """The stage's output map: in memory if it is the output, on a GPU, or within ``room`` bytes."""
    if output or device.type != "cpu" or spec.channels * h * w * 4 <= room:
        layout = torch.contiguous_format if output else torch.channels_last
        return MemoryMap(torch.empty(1, spec.channels, h, w, device=device, memory_format=layout), stats=spec.stats)
    return FileMap(spec.channels, h, w, scratch, stats=spec.stats)


def tiles(size: int, side: int) -> Iterable[tuple[int, int]]:
    """[start, end) ranges of ``side`` covering [0, size) (the last one shorter)."""
    return ((start, min(start + side, size)) for start in range(0, size, side))


def _run_stage(
    stage: Stage,
    maps: dict,
    side: tuple[int, int],
    autocast: Autocast,
    known: dict,
    progress: Optional[Callable[[int], None]],
) -> None:
    """One stage over the image: every output tile computed once from its input tile and margin."""
    first = maps[stage.terms[0].map]
    in_h, in_w = first.height, first.width
    out, keep = maps[stage.out], maps.get(stage.keep) if stage.keep is not None else None
    scale, r = stage.scale, stage.radius
    device = out.tensor.device if isinstance(out, MemoryMap) else torch.device("cpu")
    normalise = [_norm_of(term, maps, known, device) for term in stage.terms]
    for layer in stage.ops:
        if isinstance(layer, FixedNorm):
            layer.scale, layer.shift = _norm_of(layer.term, maps, known, device) or (torch.ones(1), torch.zeros(1))
    for y0, y1 in tiles(in_h, side[0]):
        for x0, x1 in tiles(in_w, side[1]):
            ry0, ry1, rx0, rx1 = max(0, y0 - r), min(in_h, y1 + r), max(0, x0 - r), min(in_w, x1 + r)
            source = None
            for term, affine in zip(stage.terms, normalise):
                values = maps[term.map].read(ry0, ry1, rx0, rx1, device, affine)
                source = values if source is None else source.add_(values)
            if keep is not None:
                keep.write(source[..., y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0], y0, x0)
            with torch.no_grad(), autocast():
                result = stage.ops(source) if len(stage.ops) else source
            oy, ox = int((y0 - ry0) * scale), int((x0 - rx0) * scale)
            owned = result[..., oy : oy + int((y1 - y0) * scale), ox : ox + int((x1 - x0) * scale)].float()
            if out.moments is not None:
                out.moments.add(owned[0])
            out.write(owned, int(y0 * scale), int(x0 * scale))
            if progress is not None:
                progress(1)


def _norm_of(term: Term, maps: dict, known: dict, device: torch.device) -> Affine:
    """(scale, shift), each (1, C, 1, 1) on ``device``, that apply ``term.norm`` with the map's statistics (or
    the ``known`` ones); None for a plain term."""
    if term.norm is None:
        return None
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


# ---- the entry point ------------------------------------------------------------------------------

_PROGRAMS: "weakref.WeakKeyDictionary[nn.Module, Program]" = weakref.WeakKeyDictionary()


def program_for(sequence: nn.Module, in_channels: int, multiple: int) -> Program:
    """:func:`compile_stages` of ``sequence``, once per module (the program refers to its layers, so loading
    other weights into them later is seen)."""
    if sequence not in _PROGRAMS:
        _PROGRAMS[sequence] = compile_stages(sequence, in_channels, multiple)
    return _PROGRAMS[sequence]


def translate_streamed(
    program: Program,
    x: torch.Tensor,
    *,
    budget: int,
    map_bytes: int = 0,
    side: Optional[int] = None,
    folder: Optional[str] = None,
    autocast: Autocast = contextlib.nullcontext,
    known: Optional[dict[int, tuple[torch.Tensor, torch.Tensor]]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> torch.Tensor:
    """:func:`run_stages` for each image of ``x`` (N, C, H, W; float32, or uint8 for uint8 out), padded to the
    generator's size multiple by the caller; ``known``: norm id -> (mean, var) of shape (N or 1, C), one row per
    image or one for all."""
    outputs = []
    for i in range(x.shape[0]):
        rows = {key: tuple(t[i if t.shape[0] > 1 else 0] for t in value) for key, value in (known or {}).items()}
        outputs.append(
            run_stages(
                program,
                x[i : i + 1] if x.dtype == torch.uint8 else x[i : i + 1].float(),
                budget=budget,
                map_bytes=map_bytes,
                side=side,
                folder=folder,
                autocast=autocast,
                known=rows or None,
                progress=progress,
            )
        )
    return torch.cat(outputs)


# ---- memory --------------------------------------------------------------------------------------

DEFAULT_MAX_MEMORY = 3 << 29  # 1.5 GiB: a phone photo translates in this with the default sc generator
DEFAULT_ROOM = 512 << 20  # at least this much beyond what a process holds already, by default
TILE_BYTES = 384 << 20  # the largest tile working set worth having: beyond it the margins cost under 2%


def available_memory() -> Optional[int]:
    """The memory the system can still give (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def resident_bytes() -> int:
    """This process's resident memory now (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def default_max_memory() -> int:
    """What the process may use when the user names no budget: 1.5 GiB, or 512 MiB more than it holds already
    where it holds more (a web page with several models, a notebook), but never more than 80% of what the
    system has left on top of what it holds."""
    held, free = resident_bytes(), available_memory()
    wanted = max(DEFAULT_MAX_MEMORY, held + DEFAULT_ROOM)
    return wanted if free is None else min(wanted, int(0.8 * free) + held)


@dataclass
class MemoryPlan:
    """How to run one image: ``whole`` (one pass), or streamed with ``budget`` bytes of tiles and ``map_bytes``
    of maps kept in memory."""

    whole: bool
    budget: int = 0
    map_bytes: int = 0


def parse_bytes(text: str) -> int:
    """'1.5G', '800M', '2GiB', '1073741824' -> bytes; ValueError otherwise."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = units.get(value[-1:], 1)
    number = float(value[:-1] if value[-1:] in units else value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(text)
    return int(number * factor)


_LAYER_BYTES: "weakref.WeakKeyDictionary[nn.Module, float]" = weakref.WeakKeyDictionary()


def fits_whole(generator: nn.Module, x: torch.Tensor, max_memory: Optional[int], value_bytes: int = 4) -> bool:
    """Whether ``x`` surely fits its whole pass, judged without compiling a stage program: four times the
    largest layer's input and output (per pixel, from one pass over a 32x32 input, with the allocator's factor)
    within what :func:`memory_plan` would leave. Four times covers every stage's working set of the generators
    here (the sc generator's largest stage holds 3 times its largest layer's input and output), so an image
    this passes is one the plan would run whole too; the others get the plan."""
    if generator not in _LAYER_BYTES:
        sizes: list[float] = []

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                sizes.append((inputs[0].numel() + output.numel()) / 32**2)

        leaves = [m for m in generator.modules() if not list(m.children())]
        hooks = [m.register_forward_hook(hook) for m in leaves]
        try:
            parameter = next(generator.parameters())
            with torch.no_grad():
                generator(torch.zeros(1, x.shape[1], 32, 32, device=parameter.device))
        finally:
            for handle in hooks:
                handle.remove()
        _LAYER_BYTES[generator] = 4.0 * ALLOCATOR_FACTOR * max(sizes, default=0.0)
    limit = max_memory if max_memory is not None else default_max_memory()
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    images = pixels * value_bytes * 3 * x.shape[1]
    return 4 * _LAYER_BYTES[generator] * pixels <= limit - resident_bytes() - images


def memory_plan(
    program: Program,
    batch: int,
    height: int,
    width: int,
    max_memory: Optional[int],
    value_bytes: int = 4,
    stream: bool = False,
) -> MemoryPlan:
    """Whole if the whole pass fits what ``max_memory`` (bytes for the process; default
    :func:`default_max_memory`) leaves after what the process holds and the image's own input and output
    (``value_bytes`` each value: 4 for float tensors, 1 for a photo's bytes); else streamed within it.
    ``stream``: streamed even when the whole pass fits (its maps then in memory: the faster path under bf16
    autocast, see benchmarks/README.md). A UserError (one line) when not even the input and output fit."""
    limit = max_memory if max_memory is not None else default_max_memory()
    out_channels = program.maps[program.stages[-1].out].channels
    images = batch * height * width * value_bytes * (program.maps[0].channels + 2 * out_channels)
    free = limit - resident_bytes() - images
    if free <= 0:
        raise TooLarge(
            f"max_memory: a {width}x{height} image needs {images / 2**30:.2f} GiB for its input and output and "
            f"this process holds {resident_bytes() / 2**30:.2f} GiB, beyond the {limit / 2**30:.2f} GiB allowed; "
            "allow more (--max_memory) or translate a smaller image"
        )
    if not stream and batch * whole_pass_bytes(program, height, width) <= free:
        return MemoryPlan(whole=True)
    budget = min(free // 2, TILE_BYTES)
    return MemoryPlan(whole=False, budget=budget, map_bytes=free - budget)
