"""A Hugging Face Space's entry point: app.py's page on the model(s) from the Hub named by MODEL_ID.

MODEL_ID is a Space variable (Settings -> Variables); without it, the first line of model_id.txt beside this
file (scripts/make_space.py writes it). Several ids separated by commas give a menu of models. The model runs
on the Space's GPU when it has one. Spaces sets GRADIO_SERVER_NAME and GRADIO_SERVER_PORT, which app.py's
defaults follow.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from app import main
from util.errors import UserError, run_cli

ID_FILE = Path(__file__).with_name("model_id.txt")


def model_ids() -> list[str]:
    """The Hub ids to serve: $MODEL_ID, else model_id.txt's first line, split at commas."""
    text = os.environ.get("MODEL_ID", "").strip()
    if not text and ID_FILE.is_file():
        words = ID_FILE.read_text().split()
        text = words[0] if words else ""
    if not text:
        raise UserError(
            "no model: set the Space variable MODEL_ID to a Hub id (owner/name), or write it in model_id.txt"
        )
    return [part.strip() for part in text.split(",") if part.strip()]


def serve() -> None:
    argv = [arg for model_id in model_ids() for arg in ("--name", model_id)]
    main(argv + ["--device", "cuda" if torch.cuda.is_available() else "cpu"])


if __name__ == "__main__":
    run_cli(serve)
