"""The non-finite step guard: a step whose loss or gradient is NaN or infinite changes nothing.

train.py calls ``begin_step``, the model's ``optimize_parameters`` (each optimiser through
:meth:`StepGuard.optimizer_step`, then ``finish_step``), and ``end_step``, which names what was not finite.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch

from models.parts.schedules import optimiser_names
from util import dist
from util.image_pool import ImagePool


class StepGuard:
    """Never applying a non-finite loss or gradient, and undoing the rest of such a step (a part of BaseModel)."""

    optimizers: list[torch.optim.Optimizer]
    scaler: torch.amp.GradScaler
    nonfinite: list[str]
    autocast: Callable[[], contextlib.AbstractContextManager]
    _norm_buffers: Optional[list[torch.Tensor]] = None  # the networks' BatchNorm statistics, found once
    _norm_backup: list[torch.Tensor]

    def _reset_guard(self) -> None:
        self.nonfinite = []  # this step's verdict: the names of what was not finite
        self._skip = False
        self._scaler_steps = 0

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, compute_loss: Callable[[], tuple[torch.Tensor, dict]]
    ) -> dict:
        """zero_grad, ``compute_loss()`` under autocast, backward and step (fp16: through the GradScaler).

        Returns the loss parts. The step goes through :meth:`apply_step`, so a non-finite loss or
        gradient is never applied; once one is found, the step's later optimisers are skipped too
        (their losses are still computed, for the log, but not back-propagated). Call
        :meth:`finish_step` once after the step's last optimizer.
        """
        optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = compute_loss()
        if self._skip:
            self.nonfinite += [name for name in _nonfinite_names(parts) if name not in self.nonfinite]
            return parts
        self.scaler.scale(loss).backward()
        self.apply_step(optimizer, loss, parts)
        return parts

    def apply_step(
        self, optimizer: torch.optim.Optimizer, loss: Optional[torch.Tensor] = None, parts: Optional[dict] = None
    ) -> None:
        """``scaler.step(optimizer)`` unless this step has a non-finite loss or gradient (one host sync).

        A non-finite ``loss`` (or, without fp16, gradient of ``optimizer``) marks the whole step as
        non-finite: this optimiser and the step's later ones do not step, and the loss names are
        kept in ``nonfinite``. With ``--amp fp16`` the gradients are the GradScaler's business: it
        skips an overflowing step and lowers its scale by itself, which is not counted here. Under
        torchrun the verdict is every process's (one small all-reduce), so the processes stay equal.
        """
        if self._skip:
            return
        checks = [] if loss is None else [loss.detach().float().reshape(-1)]
        if not self.scaler.is_enabled():
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads:  # the largest |entry| of each gradient: inf or NaN exactly when one entry is
                checks.append(torch.stack(torch._foreach_norm(grads, float("inf"))).float())
        if checks and not _all_finite(checks):
            self._skip = True
            names = _nonfinite_names(parts or {}) or [f"gradients of {self._optimizer_name(optimizer)}"]
            self.nonfinite += [name for name in names if name not in self.nonfinite]
            return
        self.scaler.step(optimizer)
        self._scaler_steps += 1

    def finish_step(self) -> None:
        """After the step's last optimiser: ``scaler.update()``, if the GradScaler stepped one (fp16).

        The next step starts with a clean verdict (``nonfinite`` stays readable until :meth:`begin_step`).
        """
        if self._scaler_steps:
            self.scaler.update()
        self._skip = False
        self._scaler_steps = 0

    def begin_step(self) -> None:
        """Before ``optimize_parameters``: a new verdict; the image pools and BatchNorm statistics remembered."""
        self._reset_guard()
        for pool in self._pools():
            pool.mark()
        if self._norm_buffers is None:
            self._norm_buffers = [
                b
                for net in self.networks().values()
                for name, b in net.named_buffers()
                if name.endswith(("running_mean", "running_var")) and b.is_floating_point()
            ]
            self._norm_backup = [b.clone() for b in self._norm_buffers]
        if self._norm_buffers:
            torch._foreach_copy_(self._norm_backup, self._norm_buffers)

    def end_step(self) -> list[str]:
        """After ``optimize_parameters``: the names of the losses (or gradients) that were not finite, [] if none.

        A non-finite step's changes to the image pools and BatchNorm statistics are undone.
        """
        if self.nonfinite:
            for pool in self._pools():
                pool.undo()
            if self._norm_buffers:
                torch._foreach_copy_(self._norm_buffers, self._norm_backup)
        return self.nonfinite

    def _pools(self) -> list[ImagePool]:
        return [value for value in vars(self).values() if isinstance(value, ImagePool)]

    def _optimizer_name(self, optimizer: torch.optim.Optimizer) -> str:
        if optimizer not in self.optimizers:
            return "an optimiser"
        name = optimiser_names(self, self.optimizers)[id(optimizer)]
        return f"optimiser {name}" if name.isdigit() else name


def _all_finite(checks: list[torch.Tensor]) -> bool:
    """Whether every entry of ``checks`` (1-d tensors on one device) is finite, on every process (one host sync;
    under torchrun one small all-reduce, so all processes take the same decision: the losses are each one's own)."""
    finite = torch.isfinite(torch.cat([c.to(checks[0].device) for c in checks])).all().float().reshape(1)
    return float(dist.mean_over_ranks(finite)) == 1.0


def _nonfinite_names(parts: dict) -> list[str]:
    """The names of the loss parts that are not finite (reads them: a host sync; used once a step went wrong)."""
    return [name for name, value in parts.items() if not bool(torch.isfinite(value.detach()).all())]
