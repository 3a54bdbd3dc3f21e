"""The networks' files (``<tag>_net_<name>.pth``, reference-compatible) and the training state of an exact
resume (optimisers, schedules, the GradScaler and the model's extra state: its image pools)."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch

from models.parts.config import CommonConfig
from models.wrappers import unwrap
from util import checkpoint
from util.image_pool import ImagePool


class Checkpoints:
    """Saving and loading (a part of BaseModel)."""

    common: CommonConfig
    save_dir: str
    model_names: list[str]
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]
    scaler: torch.amp.GradScaler

    def net_path(self, tag: str, name: str) -> str:
        """``<save_dir>/<tag>_net_<name>.pth`` (util.checkpoint.net_path)."""
        return checkpoint.net_path(self.save_dir, tag, name)

    def network_files(self, tag: str) -> dict[str, dict]:
        """``<tag>_net_<name>.pth`` -> plain, reference-compatible state_dict (on the CPU) for each network."""
        return checkpoint.network_files(self.networks(), self.save_dir, tag)

    def save_networks(self, tag: str) -> None:
        """Write every network's file, committed together (util/commit.py; main process only)."""
        checkpoint.save_networks(self.networks(), self.save_dir, tag)

    def read_networks(self, tag: str, names: Optional[Iterable[str]] = None) -> dict[str, tuple[str, dict]]:
        """name -> (path, state_dict) of ``<tag>_net_<name>.pth`` (all of ``model_names`` by default), read
        but not applied (UserError if unreadable)."""
        return checkpoint.read_networks(self.save_dir, tag, names if names is not None else self.model_names)

    def apply_networks(self, networks: dict[str, tuple[str, dict]]) -> None:
        """Load what :meth:`read_networks` returned into the networks (strict keys)."""
        checkpoint.apply_networks({name: unwrap(getattr(self, "net" + name)) for name in networks}, networks)

    def load_networks(self, tag: str, names: Optional[Iterable[str]] = None) -> None:
        """Load ``<tag>_net_<name>.pth`` into each network (weights only, strict keys)."""
        self.apply_networks(self.read_networks(tag, names))

    def training_state(self) -> dict:
        """Optimisers, schedulers, the fp16 GradScaler (plus :meth:`extra_state`), for an exact resume."""
        return {
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "extra": self.extra_state(),
        }

    def load_training_state(self, state: dict, first_epoch: int, saved_opt: Optional[dict] = None) -> None:
        """Restore :meth:`training_state` to resume at epoch ``first_epoch``.

        The schedules are rebuilt from the current options at that epoch (only a ``plateau``
        schedule, which depends on the losses seen, keeps its saved state). ``saved_opt``, the
        options of the saved run, lets an allowed change of ``--lr`` / ``--beta1`` / ``--beta2``
        take effect (the rates of every optimiser scale by the new ``--lr`` over the old).
        """
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        saved_opt = saved_opt or {}
        self.apply_optimiser_changes(saved_opt)
        self.build_schedulers(first_epoch)
        if self.common.lr_policy == "plateau" and saved_opt.get("lr_policy", "plateau") == "plateau":
            for scheduler, saved in zip(self.schedulers, state["schedulers"]):
                scheduler.load_state_dict(saved)
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict:
        """The model's own training state, one layout for every model: ``{"pools": {attribute: pool state}}``
        for every image pool the model holds (a model with more to keep extends the dict and
        :meth:`load_extra_state`)."""
        pools = {name: value.state_dict() for name, value in vars(self).items() if isinstance(value, ImagePool)}
        return {"pools": pools} if pools else {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`; also reads the layouts saved before it was one (``pool`` for sc's and
        cut's one pool, ``pool_A`` / ``pool_B`` for cycle_gan's ``fake_A_pool`` / ``fake_B_pool``)."""
        pools = dict(state.get("pools", {}))
        own = [name for name, value in vars(self).items() if isinstance(value, ImagePool)]
        for key, saved in state.items():
            if key == "pool" and len(own) == 1:
                pools[own[0]] = saved
            elif key.startswith("pool_"):
                pools[f"fake_{key[len('pool_') :]}_pool"] = saved
        for name, pool_state in pools.items():
            pool = getattr(self, name, None)
            if isinstance(pool, ImagePool):
                pool.load_state_dict(pool_state)
