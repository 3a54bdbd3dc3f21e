"""Experiment trackers behind one small interface: TensorBoard event files and Weights & Biases runs.

Both packages are optional. :func:`tracker_available` checks one (a missing package costs one warning
line naming the pip command) and :func:`open_trackers` starts those asked for; training goes on
without a tracker whose package is missing or that cannot start.

The step axis of every tracker is the number of training images seen so far (summed over all
processes), the counter that ``--print_freq`` and ``--display_freq`` count in. TensorBoard gets it as
its global step; W&B gets it as the logged metric ``images_seen``, declared the x-axis of every other
metric (W&B's own ``_step`` then only counts log calls, so a resumed run may log images counts that
the interrupted session already logged without W&B dropping them).
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from typing import Any

import numpy as np

_log = logging.getLogger("util.logger")

TENSORBOARD_INSTALL_HINT = "pip install tensorboard"
WANDB_INSTALL_HINT = "pip install wandb"
STEP_METRIC = "images_seen"  # W&B's x-axis for every logged value


def new_wandb_run_id() -> str:
    """Eight random lowercase letters and digits (W&B's id alphabet); never touches the seeded RNGs."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def options_markdown(config: dict[str, Any]) -> str:
    """The options as a Markdown code block (4-space indent): ``name: value`` lines, sorted by name."""
    return "\n".join(f"    {key}: {value}" for key, value in sorted(config.items()))


def _as_floats(values: dict[str, float]) -> dict[str, float]:
    """Floats of the values (0-d tensors included); NaN and infinities are passed on as they are."""
    return {key: float(value) for key, value in values.items()}


class Tracker:
    """One experiment tracker. ``step``: training images seen so far; images are (H, W, 3) uint8."""

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        """Record ``values`` (tag -> number, e.g. ``loss/G_GAN``) at ``step``."""
        raise NotImplementedError

    def log_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        """Record ``images`` (tag -> (H, W, 3) uint8 array, e.g. ``visuals/fake_B``) at ``step``."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush everything to disk and release the writer or run."""


class TensorBoardTracker(Tracker):
    """Event files in ``log_dir`` (``checkpoints/<name>/tensorboard``), via torch's SummaryWriter.

    Args:
        log_dir: the event file folder; one run in TensorBoard, all sessions of a resumed run in it.
        purge_step: a resumed session's first step: TensorBoard hides what an interrupted session
            logged at this step or later, so the curves continue without overlapping. None: new run.
        options_text: Markdown shown in TensorBoard's Text tab under ``options`` ('' for none).
    """

    def __init__(self, log_dir: str, *, purge_step: int | None = None, options_text: str = "") -> None:
        from torch.utils.tensorboard import SummaryWriter

        # A short flush interval so a run watched live (or cut off by a crash) is at most 10 s behind.
        self.writer = SummaryWriter(log_dir=log_dir, purge_step=purge_step, flush_secs=10)
        if options_text:
            self.writer.add_text("options", options_text, global_step=purge_step or 0)

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in _as_floats(values).items():
            self.writer.add_scalar(tag, value, global_step=step)

    def log_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        for tag, image in images.items():
            self.writer.add_image(tag, image, global_step=step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A Weights & Biases run (``wandb.init``), resumed when ``run_id`` names an earlier one.

    Args:
        project: W&B project (``--wandb_project_name``); name: the run's display name (``--name``).
        run_id: the run id, saved in the training state so ``--continue_train`` continues the same run.
        directory: where the local ``wandb/`` folder goes (None: wandb's own choice, e.g. $WANDB_DIR).
        config: the options, shown as the run's config.

    ``WANDB_MODE=offline`` writes the run locally only (``wandb sync`` uploads it later).
    """

    def __init__(
        self, *, project: str, name: str, run_id: str, directory: str | None, config: dict[str, Any] | None
    ) -> None:
        import wandb

        self.wandb = wandb
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(project=project, name=name, id=run_id, resume="allow", dir=directory)
        if config:
            # A resumed run may change options (--continue_train itself, --n_epochs, ...): let them replace
            # the first session's values instead of raising W&B's ConfigError.
            self.run.config.update(config, allow_val_change=True)
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("*", step_metric=STEP_METRIC)

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log({STEP_METRIC: step, **_as_floats(values)})

    def log_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        media = {tag: self.wandb.Image(image, caption=tag.rsplit("/", 1)[-1]) for tag, image in images.items()}
        self.run.log({STEP_METRIC: step, **media})

    def close(self) -> None:
        self.run.finish()


def tracker_available(package: str, hint: str) -> bool:
    """Whether ``package`` imports; if not, one warning line with the pip command ``hint``."""
    try:
        __import__(package)
    except ImportError:
        _log.warning("%s is not installed; install it with `%s` — continuing without it", package, hint)
        return False
    return True


def _start(label: str, make: Any) -> Tracker | None:
    """``make()``, or None after one warning line if the tracker cannot start (e.g. W&B not logged in)."""
    try:
        return make()
    except Exception as exc:  # a tracker must never stop a training run
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _log.warning("%s could not start (%s) — continuing without it", label, reason[:200])
        return None


def open_trackers(
    *,
    log_dir: str,
    name: str,
    tensorboard: bool,
    wandb_run_id: str | None,
    wandb_project: str = "sesim",
    config: dict[str, Any] | None = None,
    purge_step: int | None = None,
    options_text: str = "",
) -> list[Tracker]:
    """Start the trackers asked for (packages already checked with :func:`tracker_available`).

    Args:
        log_dir: the run folder, ``checkpoints/<name>``: TensorBoard writes to ``<log_dir>/tensorboard``,
            W&B to ``<log_dir>/wandb`` (``$WANDB_DIR/wandb`` when that is set).
        name: the W&B run's display name.
        tensorboard: whether to start TensorBoard.
        wandb_run_id: the W&B run to start or continue; None for no W&B.
        wandb_project, config: see :class:`WandbTracker`.
        purge_step, options_text: see :class:`TensorBoardTracker`.
    """
    trackers = []
    if tensorboard:
        trackers.append(
            _start(
                "TensorBoard",
                lambda: TensorBoardTracker(
                    os.path.join(log_dir, "tensorboard"), purge_step=purge_step, options_text=options_text
                ),
            )
        )
    if wandb_run_id is not None:
        directory = None if os.environ.get("WANDB_DIR") else log_dir
        trackers.append(
            _start(
                "Weights & Biases",
                lambda: WandbTracker(
                    project=wandb_project, name=name, run_id=wandb_run_id, directory=directory, config=config
                ),
            )
        )
    return [tracker for tracker in trackers if tracker is not None]
