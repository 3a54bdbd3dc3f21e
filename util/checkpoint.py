"""Atomic, code-free checkpoint files and the RNG states that make a resumed run exact."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from util.dist import is_main_process
from util.errors import UserError
from util.image_io import atomic_path


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def safe_load(path: str, what: str = "checkpoint") -> Any:
    """torch.load with ``weights_only=True`` on the CPU; missing or damaged files are UserErrors."""
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} {path} is damaged or not a weights-only checkpoint ({reason[:120]})") from None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state as tensors and plain values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
        state["cuda_device"] = torch.cuda.current_device()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
        # Under torchrun each process draws on its own device, all seeded and used alike, so the
        # saving process's device state is this process's (see save_training_checkpoint).
        torch.cuda.set_rng_state(state["cuda"][state.get("cuda_device", 0)], torch.cuda.current_device())


VERSION = "0.1.0"


def state_path(save_dir: str, tag: str) -> str:
    """``<save_dir>/<tag>_train_state.pth``: everything besides the network weights."""
    return os.path.join(save_dir, f"{tag}_train_state.pth")


def save_training_checkpoint(model: Any, logger: Any, counters: dict, opt_dict: dict, tag: str) -> None:
    """Networks (``<tag>_net_*.pth``) plus one training-state file, each written atomically.

    The state holds optimisers, schedulers, the model's extra state (image pool), the counters
    (epoch, batch in epoch, images and steps so far), every RNG state, the logger's history and
    the options, so ``--continue_train`` resumes exactly.

    Under torchrun only rank 0 writes, and its state is every process's: DDP keeps weights and
    optimisers equal, the image pool is fed every process's fakes (SCModel.query_pool), and all
    processes share one seed and draw the same random numbers (e.g. the loss's query positions).
    Resume with the same number of processes to continue exactly.
    """
    if not is_main_process():
        return
    model.save_networks(tag)
    state = {"model": model.training_state(), "counters": dict(counters), "rng": rng_state(),
             "logger": logger.state_dict(), "opt": opt_dict, "version": VERSION}
    atomic_save(state, state_path(model.save_dir, tag))


def load_training_checkpoint(model: Any, logger: Any, tag: str) -> dict:
    """Restore what :func:`save_training_checkpoint` wrote; returns the counters."""
    path = state_path(model.save_dir, tag)
    if not os.path.isfile(path):
        raise UserError(f"--continue_train: {path} does not exist (no resumable '{tag}' checkpoint in "
                        f"{model.save_dir}; train without --continue_train to start a new run)")
    state = safe_load(path, "training state")
    model.load_networks(tag)
    model.load_training_state(state["model"])
    logger.load_state_dict(state["logger"])
    set_rng_state(state["rng"])
    return dict(state["counters"])
