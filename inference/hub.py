"""The Hugging Face Hub folder of a trained generator: what it holds, how it is read, where it comes from.

A Hub model repository (or a local folder laid out like one) holds two files:

- ``config.json``: ``{"library": "sesim", "model": <model name>, "options": {<architecture options, the
  direction included>}, "networks": ["G"] (or ["G_A", "G_B"]), "epoch": <tag>}``;
- ``model.safetensors``: every tensor of each network's state_dict under ``<network>.<state_dict key>``
  (``G.model.1.weight``). safetensors holds tensors only: loading it runs no code, unlike a pickle.

scripts/push_to_hub.py writes such a folder and uploads it; inference/translator.py reads it
(:func:`read_hub_folder`), after :func:`download` for a repository id. Downloads go through the Hub's
own cache (``HF_HUB_CACHE``), so a second load, or one with ``HF_HUB_OFFLINE=1``, needs no network.
"""

from __future__ import annotations

import json
import os
import re

import torch

from util.errors import UserError

LIBRARY = "sesim"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# owner/name as the Hub spells repository ids: letters, digits, '-', '_', '.'; no '--' or '..'.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_hub_folder(path: str) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` and ``model.safetensors``."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(os.path.join(path, WEIGHTS_FILE))


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hub repository id ``owner/name``."""
    return bool(_REPO_ID.match(text)) and ".." not in text and "--" not in text


def flatten_networks(networks: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{network: state_dict} -> {"<network>.<key>": tensor}, contiguous CPU tensors (what safetensors stores)."""
    return {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, state in networks.items()
        for key, value in state.items()
    }


def split_networks(tensors: dict[str, torch.Tensor], names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The inverse of :func:`flatten_networks` for the networks ``names``; UserError when one has no tensors."""
    states: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    for key, value in tensors.items():
        name, _, rest = key.partition(".")
        if name in states and rest:
            states[name][rest] = value
    empty = [name for name, state in states.items() if not state]
    if empty:
        raise UserError(
            f"{WEIGHTS_FILE} has no tensors of network {empty[0]} (keys '{empty[0]}.<key>'), which {CONFIG_FILE} lists"
        )
    return states


def read_hub_folder(folder: str) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(config, {network: state_dict}) of a Hub folder; UserError naming the file when one is unusable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise UserError(f"{config_path} is not readable JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("library") != LIBRARY:
        raise UserError(f'{config_path}: not a config of this framework (needs "library": "{LIBRARY}")')
    missing = [key for key in ("model", "options", "networks") if key not in config]
    if missing or not isinstance(config["options"], dict) or not isinstance(config["networks"], list):
        raise UserError(f'{config_path}: needs "model", "options" (an object) and "networks" (a list)')
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    try:
        tensors = load_file(weights_path)
    except (OSError, SafetensorError) as exc:
        raise UserError(f"{weights_path} is not a readable safetensors file ({exc})") from None
    return config, split_networks(tensors, list(config["networks"]))


def download(repo_id: str) -> str:
    """The local snapshot folder of Hub repository ``repo_id`` (config and weights only), through the Hub cache.

    With ``HF_HUB_OFFLINE=1`` only the cache is read; a repository not in it is a UserError saying so.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE])
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise UserError(
                f"{repo_id}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE=1 forbids downloading it; load it once online, or unset "
                "HF_HUB_OFFLINE"
            ) from None
        raise UserError(
            f"{repo_id}: the Hugging Face Hub cannot be reached and the repository is not in the "
            f"cache ({constants.HF_HUB_CACHE})"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise UserError(
            f"{repo_id}: no such model repository on the Hugging Face Hub, or no access ({type(exc).__name__})"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"{repo_id}: downloading from the Hugging Face Hub failed ({exc})") from None
