"""Where a trained model comes from, and which checkpoint file fills each of its test networks.

A source is a run name under ``checkpoints_dir``, a run folder, a lone generator file (a published
``latest_net_G.pth``: its architecture is read from its keys, inference/from_keys.py), a folder laid out as a
Hugging Face Hub repository (inference/hub.py), or a Hub repository id ``owner/name`` (downloaded through the
Hub's cache). :func:`resolve` turns any of them into a :class:`Source`: the options the run recorded and, where
they are not a run's ``<epoch>_net_<name>.pth`` files, the networks' state_dicts. :func:`network_files` decides
the direction: which file each test network reads (cycle_gan against its trained direction: G_B's).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Optional

from inference import hub
from inference.from_keys import generator_options
from models import find_model_using_name
from options.test_options import saved_train_options, upstream_test_model
from util.checkpoint import net_path, safe_load
from util.commit import committed_path
from util.errors import UserError

States = dict[str, tuple[str, dict]]  # network file name -> (where it was read, state_dict)


@dataclass
class Source:
    """A resolved source: parse test options with ``checkpoints_dir``/``name`` and ``saved`` (the trained run's
    options; None: the run's opt.json, or the defaults), and load ``states`` (None: the run's files)."""

    checkpoints_dir: str
    name: str
    saved: Optional[dict]
    states: Optional[States]
    label: str  # the source as the user gave it
    epoch: str
    direction: Optional[str]


def resolve(source: str, *, checkpoints_dir: str, epoch: str, direction: Optional[str], model: Optional[str]) -> Source:
    """The :class:`Source` that ``source`` names (see the module docstring); UserError when it names none."""
    path = os.fspath(source)
    if os.path.isfile(path):
        return _from_file(path, epoch, direction, model)
    if os.path.isdir(path) and hub.is_hub_folder(path):
        return _from_hub_folder(path, path, direction)
    if os.path.isdir(path):
        folder = os.path.abspath(path)
        return _from_run(os.path.dirname(folder), os.path.basename(folder), path, epoch, direction)
    if os.path.isdir(os.path.join(checkpoints_dir, path)):
        return _from_run(checkpoints_dir, path, path, epoch, direction)
    if hub.looks_like_repo_id(path):
        return _from_hub_folder(hub.download(path), path, direction)
    raise UserError(
        f"{path}: not a run in {checkpoints_dir}, a run folder, a checkpoint file, or a Hugging "
        "Face Hub id (owner/name)"
    )


def _from_run(checkpoints_dir: str, name: str, label: str, epoch: str, direction: Optional[str]) -> Source:
    """A run folder: opt.json when it has one; a published folder without it (``<epoch>_net_G.pth`` only) takes
    the architecture from that file's keys."""
    saved = saved_train_options(checkpoints_dir, name) or None
    lone = os.path.join(checkpoints_dir, name, f"{epoch}_net_G.pth")
    if saved is None and os.path.isfile(lone):
        saved = inferred_options(safe_load(lone, "generator checkpoint"), lone)
    return Source(checkpoints_dir, name, saved, None, label, epoch, direction)


def _from_file(path: str, epoch: str, direction: Optional[str], model: Optional[str]) -> Source:
    """A lone generator file: the options of the run beside it (its opt.json), else read from its keys."""
    state = safe_load(path, "generator checkpoint")
    folder = os.path.dirname(os.path.abspath(path))
    saved = saved_train_options(os.path.dirname(folder), os.path.basename(folder)) or inferred_options(state, path)
    name = model or saved.get("model") or "sc"
    model_class = find_model_using_name(upstream_test_model(["--model", name])[1])
    if len(model_class.test_networks) != 1:
        raise UserError(
            f"{path}: the {name} model needs the networks {', '.join(model_class.test_networks)}; "
            "load its run folder instead of one file"
        )
    if model_class.reverse_networks:  # a lone file is the trained direction's generator only
        trained = saved.get("direction", "AtoB")
        if direction is not None and direction != trained:
            raise UserError(
                f"direction {direction}: {path} holds one generator ({trained}); the other way needs "
                "the run folder with both generators"
            )
    states = {model_class.test_networks[0]: (path, state)}
    return Source(folder, "", saved, states, path, epoch, direction)


def _from_hub_folder(folder: str, label: str, direction: Optional[str]) -> Source:
    """A folder laid out as a Hub repository (config.json + model.safetensors, see inference/hub.py)."""
    config, tensors = hub.read_hub_folder(folder)
    states = {name: (os.path.join(folder, hub.WEIGHTS_FILE), state) for name, state in tensors.items()}
    saved = {**config["options"], "model": config["model"]}
    return Source(folder, "", saved, states, label, str(config.get("epoch", "latest")), direction)


def inferred_options(state: dict, path: str) -> dict:
    """The model and architecture options of a generator file without options (see inference/from_keys.py):
    ``sinsc`` for a StyleGAN2 generator, ``cycle_gan`` for a ResNet one without anti-aliasing, else ``sc``."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state_dict of tensors")
    options = generator_options(state)
    if not options:
        return {}
    if options["netG"] == "stylegan2":
        return {"model": "sinsc", **options}
    cycle = options["no_antialias"] and options["no_antialias_up"]
    return {"model": "cycle_gan" if cycle else "sc", **options}


def network_files(model_class: type, opt: argparse.Namespace, one_way: bool) -> dict[str, str]:
    """Test network -> the network whose ``<epoch>_net_<file>.pth`` fills it under the test options ``opt``:
    itself, or its reverse generator (cycle_gan against the trained direction). ``one_way``: a ``--direction``
    against the trained one is an error for a one-way model (test.py instead swaps the data's sides, as
    CycleGAN does)."""
    files = {name: name for name in model_class.test_networks}
    reverse = opt.direction != getattr(opt, "trained_direction", opt.direction)
    if not reverse:
        return files
    if model_class.reverse_networks is None:
        if one_way:
            raise UserError(
                f"direction {opt.direction}: the {opt.model} model translates one way only "
                f"(trained {opt.trained_direction})"
            )
        return files
    if model_class.reverse_networks and opt.input_nc != opt.output_nc:
        raise UserError(
            f"--direction {opt.direction}: the run was trained {opt.trained_direction} with --input_nc "
            f"{opt.input_nc} and --output_nc {opt.output_nc}; the other way needs equal counts"
        )
    return {name: model_class.reverse_networks.get(name, name) for name in files}


def read_run_networks(save_dir: str, tag: str, files: dict[str, str]) -> States:
    """Each test network's ``<save_dir>/<tag>_net_<file>.pth``; a single-generator model whose own file is
    missing takes a lone ``<tag>_net_G.pth`` (CycleGAN's pretrained downloads, loaded upstream with
    ``--model test``)."""
    states = {}
    for name, file in files.items():
        path, lone = net_path(save_dir, tag, file), net_path(save_dir, tag, "G")
        if len(files) == 1 and file == name and not os.path.isfile(committed_path(path)) and os.path.isfile(lone):
            path = lone
        states[name] = (path, safe_load(committed_path(path), f"net_{file} checkpoint"))
    return states
