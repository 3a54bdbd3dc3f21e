"""Instance-norm statistics shared across the pieces of one image (tiles) or the frames of one clip.

An instance norm normalises every channel by the mean and variance of its own input. :class:`NormStatistics`
takes over a network's instance norms so that they normalise with statistics set from outside instead:

- gathered (:meth:`NormStatistics.gather`): layer by layer, each pass runs the inputs up to the layer being
  gathered, which normalises with the statistics the earlier passes found and records the sums and sums of
  squares of its input over the region each input owns; the pass stops there. After the last layer every
  statistic is known and fixed. inference/tiling.py gathers over the tiles of an image (their owned parts
  partition it: the whole image's statistics, exactly); inference/video.py over a sample of a clip's frames
  with ``--clip_exact``;
- pooled (:meth:`NormStatistics.gather_pooled`): one pass recording every layer's input over all the inputs,
  each normalised by its own statistics as usual: a clip's statistics at the cost of one pass over the sample
  (inference/video.py's default);
- pooled as they come (:meth:`record_pooled`, then :meth:`adopt`): the same, one batch at a time;
- running (``momentum``): every call updates each layer's statistics with its input's own, as an exponential
  moving average, and normalises with the result: one pass, for streams.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, Optional

import torch
from torch import nn

Region = tuple[int, int, int, int, int, int]  # y0, y1, x0, x1 owned within an input of (h, w) pixels
WHOLE: Region = (0, 1, 0, 1, 1, 1)


class _Stop(Exception):
    """Raised by the recording norm layer: the rest of the pass is not needed."""


class NormStatistics:
    """Statistics for ``layers`` (instance norms) set from outside; see the module docstring.

    ``known`` maps a layer to its (mean, var), each (N or 1, C) float32, broadcast over the batch.
    """

    def __init__(self, layers: list[nn.InstanceNorm2d], momentum: Optional[float] = None) -> None:
        self.layers = layers
        self.momentum = momentum
        self.known: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.recording: set[int] = set()  # the layers whose inputs' moments are being recorded
        self.stop = False  # stop the pass at a recording layer (layer by layer) or go on (every layer at once)
        self.moments: dict[int, list] = {}  # layer -> [sum, sum of squares (float64), count] so far
        self.owned: Region = WHOLE
        self.shared = False  # one statistic for every input (a clip's frames), or one per batch entry (tiles)

    @contextlib.contextmanager
    def attached(self) -> Iterator["NormStatistics"]:
        """Within the block the layers normalise through :meth:`forward` (it replaces theirs, so a layer's own
        normalisation is not computed and then thrown away)."""
        saved = [layer.__dict__.get("forward") for layer in self.layers]
        for layer in self.layers:
            layer.forward = functools.partial(self.forward, layer)
        try:
            yield self
        finally:
            for layer, previous in zip(self.layers, saved):
                if previous is None:
                    del layer.forward
                else:
                    layer.forward = previous

    def forward(self, module: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
        """Record at a recording layer (and stop there, layer by layer); normalise with the known or running
        statistics (a recording layer not known yet normalises by each input's own: :meth:`gather_pooled`)."""
        if id(module) in self.recording:
            self._record(module, x)
            if self.stop:
                raise _Stop
            if id(module) not in self.known:
                return type(module).forward(module, x)
        mean, var = self._running(module, x) if self.momentum is not None else self.known[id(module)]
        scale = torch.rsqrt(var + module.eps)  # (N or 1, C): one multiply-add per element
        if module.affine:
            scale = scale * module.weight
            shift = module.bias - mean * scale
        else:
            shift = -mean * scale
        return torch.addcmul(shift[..., None, None], x.float(), scale[..., None, None]).to(x.dtype)

    def _record(self, module: nn.InstanceNorm2d, x: torch.Tensor) -> None:
        """Add the moments of ``x`` (N, C, fh, fw) over the owned region: summed over the batch's inputs too when
        they share one statistic (``shared``), else kept per batch entry."""
        y0, y1, x0, x1, h, w = self.owned
        fh, fw = x.shape[-2:]
        part = x[..., y0 * fh // h : y1 * fh // h, x0 * fw // w : x1 * fw // w].double()
        dims = (0, -2, -1) if self.shared else (-2, -1)
        count = part.shape[-2] * part.shape[-1] * (part.shape[0] if self.shared else 1)
        moments = [part.sum(dim=dims), part.square().sum(dim=dims), count]
        so_far = self.moments.get(id(module))
        self.moments[id(module)] = [a + b for a, b in zip(so_far, moments)] if so_far else moments

    def adopt(self) -> None:
        """The recorded moments become the recording layers' known statistics."""
        for key, (total, squares, count) in self.moments.items():
            mean = total / count
            var = (squares / count - mean.square()).clamp_min(0.0)
            if self.shared:
                mean, var = mean[None], var[None]
            self.known[key] = (mean.float(), var.float())
        self.recording, self.moments = set(), {}

    def gather(self, passes: Callable[[Callable[..., None]], None], shared: bool = False) -> None:
        """Find every layer's statistics exactly, one layer per round: ``passes(record)`` calls ``record(net, x,
        owned)`` for each input ``x`` of the round (``owned``: the region it owns, default the whole input); each
        round runs up to the layer it gathers. ``shared``: one statistic over all inputs (a clip's frames), else
        one per batch entry (the tiles of a batch)."""
        self.shared, self.stop = shared, True
        with self.attached():
            for layer in self.layers:
                self.recording = {id(layer)}
                passes(self._record_pass)
                self.adopt()

    def gather_pooled(self, passes: Callable[[Callable[..., None]], None], shared: bool = True) -> None:
        """Every layer's statistics in one pass: each layer's input recorded (pooled over all inputs) while every
        layer normalises by each input's own statistics, as it would alone. The first layer's are :meth:`gather`'s
        exactly, deeper ones differ a little (docs/video.md has the figures), for one pass over the inputs
        instead of :meth:`gather`'s partial pass per layer. (Iterating it, each round normalising with the
        round before's, makes one more layer exact per round but moves the deeper ones further away: measured on a
        6-block generator over a camera pan, the deepest layers' means are 9e-3 off after one round, 7e-2 after
        two and 2e-1 after four.)"""
        self.shared, self.stop = shared, False
        with self.attached():
            self.recording = {id(layer) for layer in self.layers}
            passes(self._record_pass)
            self.adopt()

    def record_pooled(self, net: Callable[[torch.Tensor], object], x: torch.Tensor) -> None:
        """One batch of :meth:`gather_pooled`'s pass, for inputs that arrive one batch at a time (a shot's frames
        as they are decoded), pooled into one statistic; :meth:`adopt` makes the recorded moments the statistics."""
        self.shared, self.stop = True, False
        self.recording = {id(layer) for layer in self.layers}
        with self.attached():
            self._record_pass(net, x)

    def _record_pass(self, net: Callable[[torch.Tensor], object], x: torch.Tensor, owned: Region = WHOLE) -> None:
        """Run ``net(x)`` (up to the recording layer, layer by layer), adding the moments over ``owned``."""
        self.owned = owned
        with contextlib.suppress(_Stop):
            net(x)

    def _running(self, module: nn.InstanceNorm2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each input's running statistics (N, C), blending its own into the layer's in batch order (a batch is a
        run of consecutive frames): s_i = m s_(i-1) + (1 - m) own_i, the first input's own starting the average.
        The last becomes the layer's known statistics, for the next call."""
        var, mean = torch.var_mean(x.float(), dim=(-2, -1), unbiased=False)  # (N, C)
        previous = self.known.get(id(module))
        means, variances = [], []
        for i in range(x.shape[0]):  # over the batch's few frames; the pixels are reduced above
            own = (mean[i : i + 1], var[i : i + 1])
            m = self.momentum
            previous = (
                own if previous is None else (m * previous[0] + (1 - m) * own[0], m * previous[1] + (1 - m) * own[1])
            )
            means.append(previous[0])
            variances.append(previous[1])
        self.known[id(module)] = previous
        return torch.cat(means), torch.cat(variances)


def instance_norms(net: nn.Module) -> list[nn.InstanceNorm2d]:
    """The instance norms of ``net`` that normalise by each input's own statistics, in order."""
    return [
        m for m in net.modules() if isinstance(m, nn.InstanceNorm2d) and not (m.track_running_stats and not m.training)
    ]


def input_moments(net: Callable[[torch.Tensor], object], layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each input's per-channel mean and variance at ``layer``'s input, (N, 2, C) float64, running ``net`` on
    ``x`` only up to that layer."""
    seen: list[torch.Tensor] = []

    def look(module: nn.Module, args: tuple) -> None:
        var, mean = torch.var_mean(args[0].double(), dim=(-2, -1), unbiased=False)
        seen.append(torch.stack([mean, var], 1))
        raise _Stop

    handle = layer.register_forward_pre_hook(look)
    try:
        with contextlib.suppress(_Stop):
            net(x)
    finally:
        handle.remove()
    return seen[0]


def statistics_spread(moments: torch.Tensor) -> float:
    """How far a set of inputs' own statistics move, from their :func:`input_moments` (T, 2, C): per channel,
    the standard deviation of their means over the pooled standard deviation (of every value of every input),
    averaged over the channels; 0 for one input."""
    mean, var = moments[:, 0], moments[:, 1]
    pooled = (var.mean(0) + mean.var(0, unbiased=False)).clamp_min(1e-20).sqrt()
    return float((mean.std(0, unbiased=False) / pooled).mean())
