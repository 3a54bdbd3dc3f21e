"""Learning-rate schedules of CycleGAN/CUT: linear, step, plateau, cosine."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import lr_scheduler


class LinearDecay:
    """Keep the rate for ``n_epochs`` then decay linearly to 0 over ``n_epochs_decay`` (+1) epochs.

    A class rather than a lambda so its parameters go into the scheduler's state_dict.
    """

    def __init__(self, n_epochs: int, n_epochs_decay: int, epoch_count: int) -> None:
        self.n_epochs, self.n_epochs_decay, self.epoch_count = n_epochs, n_epochs_decay, epoch_count

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + self.epoch_count - self.n_epochs) / float(self.n_epochs_decay + 1)


def get_scheduler(optimizer: torch.optim.Optimizer, *, policy: str, n_epochs: int, n_epochs_decay: int,
                  epoch_count: int, lr_decay_iters: int) -> Any:
    """A scheduler stepped once per epoch (``plateau`` is stepped with a metric)."""
    builders = {
        "linear": lambda: lr_scheduler.LambdaLR(optimizer, LinearDecay(n_epochs, n_epochs_decay, epoch_count)),
        "step": lambda: lr_scheduler.StepLR(optimizer, step_size=lr_decay_iters, gamma=0.1),
        "plateau": lambda: lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2,
                                                          threshold=0.01, patience=5),
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs, eta_min=0),
    }
    if policy not in builders:
        raise ValueError(f"unknown lr policy {policy!r}; choose from {', '.join(sorted(builders))}")
    return builders[policy]()
