"""BaseModel: the contract every model keeps (set_input / forward / optimize_parameters / test ...).

Subclasses fill ``model_names`` (networks saved as ``<tag>_net_<name>.pth`` from ``self.net<name>``),
``loss_names`` (the keys of ``compute_G_loss``/``compute_D_loss`` parts, shown in logs) and
``visual_names`` (tensors shown in visdom / HTML), and build every network and optimiser in
``__init__``.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections import OrderedDict
from typing import Any, Iterable, Optional

import torch
import torch.nn as nn

from models.schedulers import get_scheduler
from util.checkpoint import atomic_save, safe_load
from util.errors import UserError

_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


class BaseModel:
    """Abstract model. See models/template_model.py for a documented example."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add model-specific flags or change defaults; return the parser."""
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.is_train = opt.is_train
        self.device = torch.device(f"cuda:{opt.gpu_ids[0]}") if opt.gpu_ids else torch.device("cpu")
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names: list[str] = []
        self.model_names: list[str] = []
        self.visual_names: list[str] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        self.image_paths: list[str] = []
        self.loss_parts: dict[str, torch.Tensor] = {}

    # ---- the interface train.py and test.py use -------------------------------------------
    def set_input(self, batch: dict) -> None:
        """Unpack a batch from the data loader onto the device."""
        raise NotImplementedError

    def forward(self) -> None:
        """Run the generator(s)."""
        raise NotImplementedError

    def optimize_parameters(self) -> None:
        """One training step: zero_grad / backward / step for every network."""
        raise NotImplementedError

    def compute_visuals(self) -> None:
        """Extra visuals after forward (none by default)."""

    def setup(self, epoch: Optional[str] = None) -> None:
        """Build schedulers (training) and load networks (testing, or ``epoch`` when given)."""
        opt = self.opt
        if self.is_train:
            self.schedulers = [get_scheduler(o, policy=opt.lr_policy, n_epochs=opt.n_epochs,
                                             n_epochs_decay=opt.n_epochs_decay, epoch_count=opt.epoch_count,
                                             lr_decay_iters=opt.lr_decay_iters) for o in self.optimizers]
        if epoch is not None:
            self.load_networks(epoch)
        if getattr(opt, "verbose", False):
            self.print_networks()

    def networks(self) -> dict[str, nn.Module]:
        """name -> network for every name in model_names."""
        return {name: getattr(self, "net" + name) for name in self.model_names}

    def eval(self) -> None:
        for net in self.networks().values():
            net.eval()

    def test(self) -> None:
        """Forward without gradients, then compute_visuals."""
        with torch.no_grad():
            self.forward()
            self.compute_visuals()

    def get_image_paths(self) -> list[str]:
        return self.image_paths

    def get_current_visuals(self) -> "OrderedDict[str, torch.Tensor]":
        """name -> (B, C, H, W) image tensor in [-1, 1], for the visuals that exist."""
        visuals = OrderedDict()
        for name in self.visual_names:
            value = getattr(self, name, None)
            if isinstance(value, torch.Tensor):
                visuals[name] = value
        return visuals

    def get_current_losses(self) -> "OrderedDict[str, float]":
        """name -> value of the latest step's losses (only those computed)."""
        return OrderedDict((k, float(self.loss_parts[k])) for k in self.loss_names if k in self.loss_parts)

    def update_learning_rate(self, metric: Optional[float] = None) -> float:
        """Step every scheduler once (at the end of an epoch); returns the new learning rate."""
        with warnings.catch_warnings():
            # A run resumed at an epoch's end steps the schedule before its first optimizer step.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for scheduler in self.schedulers:
                if self.opt.lr_policy == "plateau":
                    scheduler.step(metric if metric is not None else 0.0)
                else:
                    scheduler.step()
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    @staticmethod
    def set_requires_grad(nets: Iterable[nn.Module], requires_grad: bool) -> None:
        for net in nets:
            if net is not None:
                net.requires_grad_(requires_grad)

    # ---- saving and loading ---------------------------------------------------------------
    def net_path(self, tag: str, name: str) -> str:
        return os.path.join(self.save_dir, f"{tag}_net_{name}.pth")

    def save_networks(self, tag: str) -> None:
        """Write each network as a plain, reference-compatible state_dict (atomically)."""
        for name, net in self.networks().items():
            state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
            atomic_save(state, self.net_path(tag, name))

    def load_networks(self, tag: str, names: Optional[Iterable[str]] = None) -> None:
        """Load ``<tag>_net_<name>.pth`` into each network (weights only, strict keys)."""
        for name in names if names is not None else self.model_names:
            path = self.net_path(tag, name)
            state = safe_load(path, f"net_{name} checkpoint")
            load_state_dict_checked(getattr(self, "net" + name), state, path)

    def training_state(self) -> dict:
        """Optimisers and schedulers (plus :meth:`extra_state`), for an exact resume."""
        return {"optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers],
                "extra": self.extra_state()}

    def load_training_state(self, state: dict) -> None:
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict:
        """Model-specific training state (e.g. the image pool)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`."""

    def print_networks(self) -> None:
        for name, net in self.networks().items():
            count = sum(p.numel() for p in net.parameters())
            print(net)
            print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M")


def load_state_dict_checked(net: nn.Module, state: dict, path: str) -> None:
    """Load a state_dict saved by this project, by CycleGAN/CUT or by F-LSeSim.

    Drops a ``module.`` prefix (DataParallel saves) and stale InstanceNorm running statistics, then
    loads strictly; mismatches are UserErrors naming the file and the first offending keys.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state_dict of tensors")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    own = net.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.endswith(_NORM_STATS)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
        raise UserError(f"{path} does not fit this network ({'; '.join(parts)}); check --netG/--netD/--ngf "
                        "and the other architecture options")
    net.load_state_dict(state)
