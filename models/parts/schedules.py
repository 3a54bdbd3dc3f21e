"""The optimisers (Adam with ``--lr``, ``--beta1``, ``--beta2``) and their learning-rate schedules."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import torch
import torch.nn as nn

from models.parts.config import CommonConfig
from models.schedulers import get_scheduler


def optimiser_names(holder: object, optimizers: list[torch.optim.Optimizer]) -> dict[int, str]:
    """id(optimiser) -> its name: ``optimizer_G`` -> ``G``; one not held in an ``optimizer_<X>`` attribute of
    ``holder`` is named by its index in ``optimizers``."""
    names = {
        id(value): key[len("optimizer_") :]
        for key, value in vars(holder).items()
        if key.startswith("optimizer_") and isinstance(value, torch.optim.Optimizer)
    }
    return {id(o): names.get(id(o), str(index)) for index, o in enumerate(optimizers)}


class Schedules:
    """The optimisers and their schedules (a part of BaseModel)."""

    common: CommonConfig
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]

    def adam(self, *modules: nn.Module, weight_decay: float = 0.0) -> torch.optim.Adam:
        """Adam over the parameters of ``modules`` with ``--lr``, ``--beta1``, ``--beta2`` (and an L2
        ``weight_decay``, as torch.optim.Adam applies it), kept in ``optimizers``."""
        params = [p for module in modules for p in module.parameters()]
        c = self.common
        optimizer = torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2), weight_decay=weight_decay)
        self.optimizers.append(optimizer)
        return optimizer

    def build_schedulers(self, first_epoch: int) -> None:
        """(Re)build every optimiser's schedule from the options, starting at epoch ``first_epoch``.

        For the epoch-based policies this also sets each optimiser's rate to that epoch's; a
        resumed run calls it again at the epoch it resumes, so it follows the options it was
        resumed with (a longer ``--n_epochs``, say), as CycleGAN does.
        """
        c = self.common
        gamma = c.lr_decay_gamma if c.lr_decay_gamma is not None else 0.1
        self.schedulers = [
            get_scheduler(
                o,
                policy=c.lr_policy,
                n_epochs=c.n_epochs,
                n_epochs_decay=c.n_epochs_decay,
                epoch_count=first_epoch,
                lr_decay_iters=c.lr_decay_iters,
                lr_decay_gamma=gamma,
            )
            for o in self.optimizers
        ]

    def update_learning_rate(self, metric: Optional[float] = None) -> float:
        """Step every scheduler once (at the end of an epoch); returns the new learning rate."""
        with warnings.catch_warnings():
            # A run resumed at an epoch's end steps the schedule before its first optimizer step.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for scheduler in self.schedulers:
                if self.common.lr_policy == "plateau":
                    scheduler.step(metric if metric is not None else 0.0)
                else:
                    scheduler.step()
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each optimiser, named by its attribute (``optimizer_G`` -> ``G``;
        one not held in an ``optimizer_<X>`` attribute is named by its index in ``optimizers``)."""
        names = optimiser_names(self, self.optimizers)
        return {names[id(o)]: o.param_groups[0]["lr"] for o in self.optimizers}

    def apply_optimiser_changes(self, saved_opt: dict) -> None:
        """A resume with a new ``--lr`` scales every group's base rate; new betas replace the saved ones
        (``saved_opt``: the options of the saved run)."""
        c = self.common
        ratio = c.lr / saved_opt["lr"] if saved_opt.get("lr") else 1.0
        old_betas = (saved_opt.get("beta1", c.beta1), saved_opt.get("beta2", c.beta2))
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                if ratio != 1.0:
                    group["initial_lr"] = group.get("initial_lr", group["lr"]) * ratio
                    group["lr"] *= ratio
                if tuple(group.get("betas", ())) == old_betas != (c.beta1, c.beta2):
                    group["betas"] = (c.beta1, c.beta2)
