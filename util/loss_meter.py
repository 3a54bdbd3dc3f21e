"""Training losses kept on the device between prints, so a step never waits for the host.

Reading a CUDA tensor (``float(loss)``) blocks the host until the GPU has finished every queued
kernel, and under torchrun averaging it costs an all-reduce. train.py reads losses only every
``--print_freq`` images and the epoch's mean generator loss (``--lr_policy plateau``) once per epoch;
:class:`LossMeter` holds them as tensors until then and does the one sync and all-reduce when asked.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from util import dist


class LossMeter:
    """The latest step's losses and the epoch's running sum of the generator losses, on the device.

    Args:
        names: loss names to keep (a model's ``loss_names``), in the order they are reported.
        device: where the running sum lives (the model's device).
        epoch_sum: the sum so far of this epoch (a resumed run passes its saved value).

    The epoch sum adds each step's ``G_*`` losses in float64 one by one, in ``names`` order, exactly
    as summing their Python floats would; so the value saved mid-epoch and resumed is the one an
    uninterrupted run has at that point. Every rank must call :meth:`latest` and :meth:`epoch_sum`
    at the same time (they all-reduce under torchrun).
    """

    def __init__(self, names: list[str], device: torch.device, epoch_sum: float = 0.0) -> None:
        self.names = list(names)
        self.device = torch.device(device)
        self.parts: dict[str, torch.Tensor] = {}
        self.start_epoch(epoch_sum)

    def start_epoch(self, epoch_sum: float = 0.0) -> None:
        """Start a new epoch's sum (at ``epoch_sum``, 0 unless resuming)."""
        self._sum = torch.tensor(float(epoch_sum), dtype=torch.float64, device=self.device)

    def update(self, parts: dict[str, torch.Tensor]) -> None:
        """Record one step's loss parts (name -> 0-d tensor); launches a few additions, never syncs."""
        self.parts = {name: parts[name].detach() for name in self.names if name in parts}
        step_sum = None
        for name, value in self.parts.items():
            if name.startswith("G_"):
                value = value.to(self._sum.device, torch.float64)
                step_sum = value if step_sum is None else step_sum + value
        if step_sum is not None:
            self._sum = self._sum + step_sum

    def latest(self) -> "OrderedDict[str, float]":
        """name -> the latest step's value, averaged over all processes (one host sync)."""
        if not self.parts:
            return OrderedDict()
        values = torch.stack([value.to(self._sum.device, torch.float64) for value in self.parts.values()])
        return OrderedDict(zip(self.parts, dist.mean_over_ranks(values).tolist()))

    def epoch_sum(self, all_ranks: bool = True) -> float:
        """The sum of every step's generator losses this epoch (one host sync), averaged over all processes
        unless ``all_ranks`` is False (then this process's own sum, and no collective call)."""
        return float(dist.mean_over_ranks(self._sum) if all_ranks else self._sum)


def wait_for_device(device: torch.device, needed: bool = True) -> None:
    """If ``needed``, block until ``device`` has run every kernel queued so far (CUDA; the CPU runs none ahead)."""
    if needed and device.type == "cuda":
        torch.cuda.synchronize(device)
