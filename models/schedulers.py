"""Learning-rate schedules of CycleGAN/CUT: linear, step, plateau, cosine.

``linear``, ``step`` and ``cosine`` are functions of the epoch number alone (CycleGAN's numbering:
the first epoch is 1, ``--epoch_count`` is the number of the first epoch a run trains), so a
schedule can be rebuilt from the options at any epoch — which is how a resumed run follows a new
``--n_epochs`` / ``--n_epochs_decay`` — and gives the same rate bit for bit as one that was never
stopped. ``plateau`` depends on the losses seen so far and is restored from its saved state instead.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim import lr_scheduler

EPOCH_POLICIES = ("linear", "step", "cosine")


class EpochFactor:
    """The learning-rate factor of epoch ``first_epoch + step`` (``step`` = scheduler steps so far).

    - linear: 1 for epochs 1..n_epochs, then 1 - (e - n_epochs) / (n_epochs_decay + 1), never below 0;
    - step: lr_decay_gamma ** floor((e - 1) / lr_decay_iters) (CycleGAN's gamma 0.1 by default);
    - cosine: (1 + cos(pi * (e - 1) / n_epochs)) / 2 (CosineAnnealingLR's closed form, eta_min 0).

    A class rather than a lambda so its parameters go into the scheduler's state_dict.
    """

    def __init__(
        self,
        policy: str,
        n_epochs: int,
        n_epochs_decay: int,
        first_epoch: int,
        lr_decay_iters: int,
        lr_decay_gamma: float = 0.1,
    ) -> None:
        if policy not in EPOCH_POLICIES:
            raise ValueError(f"unknown epoch policy {policy!r}; choose from {', '.join(EPOCH_POLICIES)}")
        self.policy, self.n_epochs, self.n_epochs_decay = policy, n_epochs, n_epochs_decay
        self.first_epoch, self.lr_decay_iters, self.lr_decay_gamma = first_epoch, lr_decay_iters, lr_decay_gamma

    def __call__(self, step: int) -> float:
        epoch = self.first_epoch + step
        if self.policy == "linear":
            return max(0.0, 1.0 - max(0, epoch - self.n_epochs) / float(self.n_epochs_decay + 1))
        if self.policy == "step":
            return self.lr_decay_gamma ** ((epoch - 1) // max(self.lr_decay_iters, 1))
        return (1.0 + math.cos(math.pi * (epoch - 1) / max(self.n_epochs, 1))) / 2.0


def get_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    policy: str,
    n_epochs: int,
    n_epochs_decay: int,
    epoch_count: int,
    lr_decay_iters: int,
    lr_decay_gamma: float = 0.1,
) -> Any:
    """A scheduler stepped once per epoch, starting at epoch ``epoch_count`` (``plateau``: with a metric).

    Building it sets the optimizer's rate to the one of epoch ``epoch_count`` (from each group's
    ``initial_lr``, kept from the optimizer's first schedule).
    """
    if policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if policy not in EPOCH_POLICIES:
        names = ", ".join(sorted(EPOCH_POLICIES + ("plateau",)))
        raise ValueError(f"unknown lr policy {policy!r}; choose from {names}")
    return lr_scheduler.LambdaLR(
        optimizer, EpochFactor(policy, n_epochs, n_epochs_decay, epoch_count, lr_decay_iters, lr_decay_gamma)
    )
