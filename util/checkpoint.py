"""All of checkpointing: atomic, code-free files; the networks' files (save, read, strict load); the training
state that makes a resumed run exact, and the checks and fall-backs of a resume."""

from __future__ import annotations

import os
from typing import Any, Iterable

import torch
import torch.nn as nn

from util.commit import PREVIOUS, commit_save, committed_path
from util.dist import get_world_size, is_main_process, print0
from util.errors import UserError
from util.seeding import rng_state, set_rng_state


def safe_load(path: str, what: str = "checkpoint") -> Any:
    """torch.load with ``weights_only=True`` on the CPU; missing or damaged files are UserErrors."""
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} {path} is damaged or not a weights-only checkpoint ({reason[:120]})") from None


# ---- the networks' files ------------------------------------------------------------------------
# Normalisation statistics some saved files hold for networks without them (stale InstanceNorm buffers):
# dropped when the network has no such buffer.
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def net_path(save_dir: str, tag: str, name: str) -> str:
    """``<save_dir>/<tag>_net_<name>.pth``: one network's weights, the published file name."""
    return os.path.join(save_dir, f"{tag}_net_{name}.pth")


def network_files(networks: dict[str, nn.Module], save_dir: str, tag: str) -> dict[str, dict]:
    """``<tag>_net_<name>.pth`` -> plain, reference-compatible state_dict (on the CPU) for each network."""
    return {
        os.path.basename(net_path(save_dir, tag, name)): {
            k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()
        }
        for name, net in networks.items()
    }


def save_networks(networks: dict[str, nn.Module], save_dir: str, tag: str) -> None:
    """Write every network's file, committed together (util/commit.py; main process only)."""
    if not is_main_process():
        return
    commit_save(save_dir, tag, network_files(networks, save_dir, tag))


def read_networks(save_dir: str, tag: str, names: Iterable[str]) -> dict[str, tuple[str, dict]]:
    """name -> (path, state_dict) of ``<tag>_net_<name>.pth``, read but not applied (UserError if unreadable)."""
    networks = {}
    for name in names:
        path = net_path(save_dir, tag, name)
        networks[name] = (path, safe_load(committed_path(path), f"net_{name} checkpoint"))
    return networks


def apply_networks(networks: dict[str, nn.Module], states: dict[str, tuple[str, dict]]) -> None:
    """Load what :func:`read_networks` returned into the plain networks of the same names (strict keys)."""
    for name, (path, state) in states.items():
        load_state_dict_checked(networks[name], state, path)


def load_state_dict_checked(net: nn.Module, state: dict, path: str) -> None:
    """Load a state_dict saved by this project, by CycleGAN/CUT or by F-LSeSim.

    Drops a ``module.`` prefix (DataParallel saves) and stale InstanceNorm running statistics, then
    loads strictly; mismatches are UserErrors naming the file and the first offending keys.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state_dict of tensors")
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
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
        raise UserError(
            f"{path} does not fit this network ({'; '.join(parts)}); check --netG/--netD/--ngf "
            "and the other architecture options"
        )
    net.load_state_dict(state)


# ---- the training state and resuming -------------------------------------------------------------
VERSION = "0.1.0"


def state_path(save_dir: str, tag: str) -> str:
    """``<save_dir>/<tag>_train_state.pth``: everything besides the network weights."""
    return os.path.join(save_dir, f"{tag}_train_state.pth")


def save_training_checkpoint(model: Any, logger: Any, counters: dict, opt_dict: dict, tag: str) -> None:
    """Networks (``<tag>_net_*.pth``) plus one training-state file, committed together (util/commit.py).

    The state holds optimisers, schedulers, the model's extra state (image pool), the counters
    (epoch, batch in epoch, images and steps so far), every RNG state, the logger's history and
    the options, so ``--continue_train`` resumes exactly. The files of one save become current
    together or not at all; for ``latest`` the previous save is kept as ``prev_latest_*``.

    Under torchrun only rank 0 writes, and its state is every process's: DDP keeps weights and
    optimisers equal, the image pool is fed every process's fakes (util.image_pool.query_across_ranks), and all
    processes share one seed and draw the same random numbers (e.g. the loss's query positions).
    Resume with the same number of processes to continue exactly.
    """
    if not is_main_process():
        return
    files = model.network_files(tag)
    files[os.path.basename(state_path(model.save_dir, tag))] = {
        "model": model.training_state(),
        "counters": dict(counters),
        "rng": rng_state(),
        "logger": logger.state_dict(),
        "opt": opt_dict,
        "world_size": get_world_size(),
        "version": VERSION,
    }
    step = {key: counters[key] for key in ("epoch", "batch", "steps") if key in counters}
    commit_save(model.save_dir, tag, files, step, keep_previous=tag == "latest")


# Options a resumed run may change freely: where things are and how often they are shown, printed,
# logged or saved, how fast it runs, and the schedule's length (a resumed run follows the new one).
RESUME_FREE_OPTIONS = frozenset(
    {
        "name",
        "checkpoints_dir",
        "dataroot",
        "gpu_ids",
        "num_threads",
        "verbose",
        "suffix",
        "is_train",
        "continue_train",
        "epoch",
        "epoch_count",
        "allow_option_change",
        "n_epochs",
        "n_epochs_decay",
        "lr_policy",
        "lr_decay_iters",
        "max_iters",
        "no_html",
        "amp",
        "channels_last",
        "compile",
        "update_html_freq",
        "print_freq",
        "max_nonfinite_steps",
    }
)
RESUME_FREE_PREFIXES = ("display_", "save_", "tensorboard", "wandb", "use_wandb")


def new_counters(epoch: int) -> dict:
    """The training counters at the start of epoch ``epoch`` of a run with no steps done yet."""
    return {"epoch": epoch, "batch": 0, "images": 0, "steps": 0, "loss_sum": 0.0, "nonfinite": 0}


def changed_options(saved: dict, current: dict, saved_world: int, world: int) -> list[str]:
    """'--option old -> new' for each option (and the number of processes) that alters the model, the
    loss or the data order. Options one of the two runs does not know are not compared."""
    changes = [
        f"--{key} {saved[key]} -> {current[key]}"
        for key in sorted(current)
        if key in saved
        and key not in RESUME_FREE_OPTIONS
        and not key.startswith(RESUME_FREE_PREFIXES)
        and _comparable(saved[key]) != _comparable(current[key])
    ]
    if saved_world != world:
        changes.append(f"number of processes {saved_world} -> {world}")
    return changes


def _comparable(value: Any) -> Any:
    """Options as saved (lists for tuples, str for paths) and as parsed compare alike."""
    return list(value) if isinstance(value, tuple) else value


def check_resume_options(saved: dict, current: dict, saved_world: int, world: int, allow: bool) -> None:
    """UserError (one line) when the resumed run's options differ where it matters, unless ``allow``."""
    changes = changed_options(saved, current, saved_world, world)
    if not changes:
        return
    if not allow:
        more = f" (and {len(changes) - 1} more: {', '.join(changes[1:])})" if len(changes) > 1 else ""
        raise UserError(
            f"--continue_train: {changes[0]} since the saved run{more}; resume with the saved "
            "value or give --allow_option_change to go on with the new one"
        )
    print0(f"--allow_option_change: resuming with {', '.join(changes)}")


def load_training_checkpoint(model: Any, logger: Any, opt: Any) -> dict:
    """Resume from ``--epoch`` (default 'latest'): what :func:`save_training_checkpoint` wrote; returns the counters.

    The saved options are checked against ``opt`` (:func:`check_resume_options`). The run goes on
    at the saved epoch and step, or at the start of epoch ``--epoch_count`` when that is given and
    differs. If the save is unreadable (a damaged file), the run says so and resumes from the older
    complete save ``prev_<tag>`` when there is one. Without a training state but with the
    ``<epoch>_net_*.pth`` files (a published run, or an epoch checkpoint), only the weights are
    loaded and training starts at ``--epoch_count`` (default: that epoch + 1) with new optimisers,
    as the published code resumes.
    """
    tag = opt.epoch
    path = state_path(model.save_dir, tag)
    if not os.path.isfile(path):
        return _resume_from_weights(model, opt, path)
    state, networks = read_save(model, tag, opt)
    model.apply_networks(networks)
    counters = dict(state["counters"])
    counters.setdefault("nonfinite", 0)  # saves of earlier versions do not count skipped steps
    if opt.epoch_count is not None and opt.epoch_count != counters["epoch"]:
        print0(
            f"--epoch_count {opt.epoch_count}: starting epoch {opt.epoch_count} from its first step "
            f"(the checkpoint stopped at step {counters['batch']} of epoch {counters['epoch']})"
        )
        counters.update(epoch=opt.epoch_count, batch=0, loss_sum=0.0)
    model.load_training_state(state["model"], first_epoch=counters["epoch"], saved_opt=state.get("opt"))
    logger.load_state_dict(state["logger"])
    set_rng_state(state["rng"])
    return counters


def read_save(model: Any, tag: str, opt: Any) -> tuple[dict, dict]:
    """The training state and network state_dicts of save ``tag`` (read, not applied; the options checked),
    or, if one of its files is unreadable, of the older complete save ``prev_<tag>``, saying so."""
    older = PREVIOUS + tag
    try:
        return _read_one_save(model, tag, opt)
    except _Unreadable as exc:
        damaged = str(exc)
        if not os.path.isfile(state_path(model.save_dir, older)):
            raise UserError(
                f"--continue_train: '{tag}' is unreadable ({damaged}) and there is no older complete "
                f"save ({os.path.basename(state_path(model.save_dir, older))}) to resume from"
            ) from None
        try:
            state, networks = _read_one_save(model, older, opt)
        except _Unreadable as also:
            raise UserError(
                f"--continue_train: '{tag}' is unreadable ({damaged}), and so is the older save '{older}' ({also})"
            ) from None
    done = state["counters"]
    print0(
        f"--continue_train: '{tag}' is unreadable ({damaged}); resuming from the older complete save "
        f"'{older}' (epoch {done['epoch']}, step {done['batch']} of the epoch, {done['steps']} steps done)"
    )
    return state, networks


class _Unreadable(UserError):
    """A file of a save is missing or damaged."""


def _read_one_save(model: Any, tag: str, opt: Any) -> tuple[dict, dict]:
    path = state_path(model.save_dir, tag)
    try:
        state = safe_load(committed_path(path), "training state")
    except UserError as exc:
        raise _Unreadable(str(exc)) from None
    if not isinstance(state, dict) or not {"model", "counters", "rng", "logger"} <= state.keys():
        raise _Unreadable(f"training state {path} lacks parts of a training state")
    check_resume_options(
        state.get("opt", {}), vars(opt), state.get("world_size", 1), get_world_size(), opt.allow_option_change
    )
    try:
        return state, model.read_networks(tag)
    except UserError as exc:
        raise _Unreadable(str(exc)) from None


def _resume_from_weights(model: Any, opt: Any, path: str) -> dict:
    """``--continue_train`` from network files alone: weights loaded, counters from ``--epoch_count``."""
    tag = opt.epoch
    if not all(os.path.isfile(model.net_path(tag, name)) for name in model.model_names):
        raise UserError(
            f"--continue_train: {path} does not exist (no resumable '{tag}' checkpoint in "
            f"{model.save_dir}; train without --continue_train to start a new run)"
        )
    if opt.epoch_count is None and not str(tag).isdigit():
        raise UserError(
            f"--continue_train: {path} does not exist, only the '{tag}' network files; give "
            "--epoch_count (the number of the first epoch to train) to resume from the weights alone"
        )
    first_epoch = opt.epoch_count if opt.epoch_count is not None else int(tag) + 1
    model.load_networks(tag)
    model.build_schedulers(first_epoch)
    print0(
        f"--continue_train: no training state for '{tag}': loaded its weights only; optimisers, image pool "
        f"and random states start anew at epoch {first_epoch}"
    )
    return new_counters(first_epoch)
