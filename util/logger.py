"""Training logger: loss_log.txt, a static HTML page with a loss curve, optional visdom, TensorBoard and W&B.

train.py calls one :class:`Logger` method per event (losses, visuals, end of epoch); the Logger sends
it to every sink that is on. TensorBoard and Weights & Biases live in util/trackers.py.

It replaces CycleGAN's Visualizer without its habits: no server process is ever started, an
unreachable or missing visdom costs one warning line (and at most about a second), and a server
that goes away later turns visdom off after one warning instead of printing a traceback per step.
Only the main process writes anything (``is_main_process=False`` turns every method into a no-op).

visdom windows (ids are strings): ``display_id`` loss plot, ``+1`` image grid, ``+2`` image
labels, ``+3`` table of the latest losses — the same scheme as CycleGAN plus the losses table.
"""

import contextlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import torch

from util.html import HTML
from util.image_io import mkdirs, save_image, tensor2im
from util.plot import LossHistory, plot_losses
from util.trackers import (
    TENSORBOARD_INSTALL_HINT,
    WANDB_INSTALL_HINT,
    Tracker,
    new_wandb_run_id,
    open_trackers,
    options_markdown,
    tracker_available,
)

if TYPE_CHECKING:
    import requests
    import visdom

_log = logging.getLogger(__name__)

VISDOM_INSTALL_HINT = 'pip install "setuptools<81" && pip install --no-build-isolation visdom==0.2.4'
CONNECT_TIMEOUT_S = 1.0  # reachability probe before visdom is contacted at all
REQUEST_TIMEOUT_S = 5.0  # per request once connected, so a hung server cannot stall training


def format_loss_line(epoch: int, iters: int, losses: dict[str, float], t_comp: float, t_data: float) -> str:
    """CycleGAN's loss line: ``(epoch: 3, iters: 400, time: 0.123, data: 0.004) G_GAN: 0.512 ...``.

    ``t_comp`` is the computation time per image, ``t_data`` the data-loading time per image (s).
    """
    head = f"(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f})"
    return " ".join([head] + [f"{name}: {float(value):.3f}" for name, value in losses.items()])


def _server_reachable(server: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to the server's host and ``port`` opens within ``timeout`` seconds."""
    host = urlparse(server if "://" in server else "http://" + server).hostname or "localhost"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_visdom_client() -> Iterator[None]:
    """Hide the visdom client's construction chatter ("Setting up a new session...", socket notes).

    The client logs these as warnings (through the deprecated ``Logger.warn``, hence the
    DeprecationWarning filter); they are not problems of the user's run.
    """
    client_logger = logging.getLogger("visdom")
    level = client_logger.level
    client_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        client_logger.setLevel(level)


def _mount_request_timeout(session: "requests.Session", timeout: float) -> None:
    """Give every request of a ``requests.Session`` a default timeout (requests has none)."""
    from requests.adapters import HTTPAdapter

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: "requests.PreparedRequest", **kwargs: object) -> "requests.Response":
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    session.mount("http://", _TimeoutAdapter())
    session.mount("https://", _TimeoutAdapter())


def _image_grid(images: list[np.ndarray]) -> np.ndarray:
    """Stack (H, W, 3) uint8 images of possibly different sizes to (N, 3, Hmax, Wmax), padding white."""
    height = max(image.shape[0] for image in images)
    width = max(image.shape[1] for image in images)
    batch = np.full((len(images), height, width, 3), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        batch[index, : image.shape[0], : image.shape[1]] = image
    return batch.transpose(0, 3, 1, 2)


def _html_table(rows: list[list[str]]) -> str:
    """A small bordered HTML table for visdom text windows."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table border="1" style="border-collapse: collapse; text-align: center;">{body}</table>'


class _VisdomSink:
    """Sends loss plots and image grids to a running visdom server; off for good after one failure."""

    def __init__(self, vis: "visdom.Visdom", *, display_id: int, ncols: int, title: str, address: str) -> None:
        self.vis = vis
        self.display_id = display_id
        self.ncols = ncols
        self.title = title
        self.address = address
        self.enabled = True

    @classmethod
    def connect(
        cls, *, server: str, port: int, env: str, display_id: int, ncols: int, title: str
    ) -> "_VisdomSink | None":
        """A sink for a reachable server, or None after one warning line saying what to do."""
        address = f"{server.rstrip('/')}:{port}"
        try:
            import visdom
        except ImportError:
            _log.warning("visdom is not installed; install it with `%s` — continuing without it", VISDOM_INSTALL_HINT)
            return None
        unreachable = (
            f"visdom server {address} not reachable; start it with `python -m visdom.server` — continuing without it"
        )
        if not _server_reachable(server, port, CONNECT_TIMEOUT_S):
            _log.warning(unreachable)
            return None
        try:
            with _quiet_visdom_client():
                vis = visdom.Visdom(server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False)
            _mount_request_timeout(vis.session, REQUEST_TIMEOUT_S)
        except OSError:
            _log.warning(unreachable)
            return None
        return cls(vis, display_id=display_id, ncols=ncols, title=title, address=address)

    def _guarded(self, send: Callable[[], object]) -> None:
        """Run one send; on a connection failure warn once and switch visdom off."""
        if not self.enabled:
            return
        try:
            send()
        except OSError as exc:
            self.enabled = False
            _log.warning("visdom server %s stopped answering (%s); continuing without visdom", self.address, exc)

    def send_losses(self, history: LossHistory, latest: dict[str, float]) -> None:
        """Replace the loss plot with the whole history and the table with the latest values."""
        names = [name for name, points in history.items() if points]
        if not names:
            return
        xs = sorted({x for name in names for x, _ in history[name]})
        column = {x: row for row, x in enumerate(xs)}
        # Losses logged at different steps share one matrix; missing points are NaN (gaps in the plot).
        values = np.full((len(xs), len(names)), np.nan)
        for col, name in enumerate(names):
            for x, value in history[name]:
                values[column[x], col] = value
        x_matrix = np.tile(np.asarray(xs, dtype=np.float64)[:, None], (1, len(names)))
        opts = {"title": f"{self.title} loss over time", "legend": names, "xlabel": "epoch", "ylabel": "loss"}
        table = _html_table([[name, f"{float(value):.4f}"] for name, value in latest.items()])
        self._guarded(lambda: self.vis.line(Y=values, X=x_matrix, win=str(self.display_id), opts=opts))
        self._guarded(
            lambda: self.vis.text(table, win=str(self.display_id + 3), opts={"title": f"{self.title} losses"})
        )

    def send_images(self, images: dict[str, np.ndarray], epoch: int) -> None:
        """Show the images as one grid, ``ncols`` per row (all in one row if ncols <= 0)."""
        ncols = self.ncols if self.ncols > 0 else len(images)
        labels = list(images)
        label_rows = [labels[start : start + ncols] for start in range(0, len(labels), ncols)]
        grid = _image_grid(list(images.values()))
        self._guarded(
            lambda: self.vis.images(
                grid,
                nrow=ncols,
                padding=2,
                win=str(self.display_id + 1),
                opts={"title": f"{self.title} images (epoch {epoch})"},
            )
        )
        self._guarded(
            lambda: self.vis.text(
                _html_table(label_rows), win=str(self.display_id + 2), opts={"title": f"{self.title} labels"}
            )
        )


class Logger:
    """Training logger for ``checkpoints/<name>``: loss_log.txt, ``web/index.html``, optional visdom,
    TensorBoard (``tensorboard/``) and Weights & Biases (``wandb/``).

    Args:
        log_dir: the experiment directory (``checkpoints/<name>``); created if missing.
        name: experiment name, used in titles.
        display_id: visdom window id base; <= 0 (the default) means no visdom at all.
        display_server, display_port, display_env: where the (already running) visdom server is.
        display_ncols: images per row in the visdom grid (<= 0: all in one row).
        display_winsize: displayed image width on the HTML page, in pixels.
        use_html: write ``web/images/*.png`` and ``web/index.html`` in :meth:`log_images`.
        is_main_process: False (other distributed ranks) makes every method a no-op.
        tensorboard: write TensorBoard event files to ``<log_dir>/tensorboard``.
        use_wandb: log to a Weights & Biases run in project ``wandb_project``, its local files in
            ``<log_dir>/wandb`` (or ``$WANDB_DIR/wandb`` when that is set).
        config: the options: W&B's run config and TensorBoard's ``options`` text.

    Each construction appends a dated header line to ``loss_log.txt``, so a resumed run is visible.
    TensorBoard and W&B start at the first event, after :meth:`load_state_dict` on a resume, so a
    resumed run continues the same event folder and the same W&B run (its id is in :meth:`state_dict`).
    Their step axis is the ``step`` passed to each method: training images seen so far.
    """

    def __init__(
        self,
        *,
        log_dir: str,
        name: str,
        display_id: int = 0,
        display_server: str = "http://localhost",
        display_port: int = 8097,
        display_env: str = "main",
        display_ncols: int = 4,
        display_winsize: int = 256,
        use_html: bool = True,
        is_main_process: bool = True,
        tensorboard: bool = False,
        use_wandb: bool = False,
        wandb_project: str = "sesim",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.log_dir = log_dir
        self.web_dir = os.path.join(log_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.loss_log_path = os.path.join(log_dir, "loss_log.txt")
        self.display_winsize = display_winsize
        self.use_html = use_html
        self.is_main_process = is_main_process
        self.history: LossHistory = {}
        self.html_epochs: dict[int, list[str]] = {}
        self.visdom: _VisdomSink | None = None
        self.config = dict(config or {})
        self.wandb_project = wandb_project
        self.last_step = 0  # the latest step any event was logged at
        self.epoch_steps: dict[int, int] = {}  # epoch -> step at its end (test_fid.py logs scores there)
        self.resumed = False
        self.trackers: list[Tracker] | None = None  # started at the first event
        self.tensorboard = self.use_wandb = False
        self.wandb_run_id: str | None = None
        if not is_main_process:
            return
        self.tensorboard = tensorboard and tracker_available("tensorboard", TENSORBOARD_INSTALL_HINT)
        self.use_wandb = use_wandb and tracker_available("wandb", WANDB_INSTALL_HINT)
        self.wandb_run_id = new_wandb_run_id() if self.use_wandb else None
        mkdirs(log_dir)
        with open(self.loss_log_path, "a", encoding="utf-8") as log_file:
            log_file.write(f"================ Training Loss ({time.strftime('%c')}) ================\n")
        if display_id > 0:
            self.visdom = _VisdomSink.connect(
                server=display_server,
                port=display_port,
                env=display_env,
                display_id=display_id,
                ncols=display_ncols,
                title=name,
            )

    @property
    def visdom_enabled(self) -> bool:
        """Whether losses and images currently go to a visdom server."""
        return self.visdom is not None and self.visdom.enabled

    def log_scalars(
        self,
        epoch: int,
        epoch_progress: float,
        iters: int,
        losses: dict[str, float],
        t_comp: float,
        t_data: float,
        *,
        step: int | None = None,
    ) -> str:
        """Record one set of losses; return the formatted line ('' on non-main ranks).

        Args:
            epoch: current epoch number.
            epoch_progress: fraction of the epoch done, in [0, 1]; the plot's x is
                ``epoch + epoch_progress``.
            iters: images seen so far in this epoch (shown in the line).
            losses: loss name -> value (floats or 0-d tensors).
            t_comp: computation time per image (s); t_data: data-loading time per image (s).
            step: TensorBoard/W&B step, training images seen so far (default: the last step used);
                the losses go there as ``loss/<name>``.

        The line is appended to loss_log.txt and not printed: the caller prints it (tqdm.write).
        """
        if not self.is_main_process:
            return ""
        losses = {name: float(value) for name, value in losses.items()}
        line = format_loss_line(epoch, iters, losses, t_comp, t_data)
        with open(self.loss_log_path, "a", encoding="utf-8") as log_file:
            log_file.write(line + "\n")
        x = float(epoch) + float(epoch_progress)
        for name, value in losses.items():
            self.history.setdefault(name, []).append((x, value))
        if self.visdom_enabled:
            self.visdom.send_losses(self.history, losses)
        self._track_scalars(step, {f"loss/{name}": value for name, value in losses.items()})
        return line

    def log_images(
        self, epoch: int, visuals: dict[str, torch.Tensor], save_result: bool, *, step: int | None = None
    ) -> None:
        """Show the first image of each visual in visdom, TensorBoard and W&B (as ``visuals/<label>``
        at ``step``, see :meth:`log_scalars`) and, if ``save_result``, on the HTML page.

        Args:
            epoch: current epoch number (names the saved files ``epoch%.3d_<label>.png``).
            visuals: label -> (B, C, H, W) or (C, H, W) tensor in [-1, 1], C = 1 or 3.
            save_result: also save the PNGs, the loss curve and rewrite ``web/index.html``
                (only when ``use_html``).
        """
        if not self.is_main_process or not visuals:
            return
        write_html = self.use_html and save_result
        trackers = self._active_trackers()
        if not (self.visdom_enabled or write_html or trackers):
            return
        images = {label: tensor2im(tensor) for label, tensor in visuals.items()}
        if self.visdom_enabled:
            self.visdom.send_images(images, epoch)
        if write_html:
            self._save_html(epoch, images)
        step = self._step(step)
        for tracker in trackers:
            tracker.log_images(step, {f"visuals/{label}": image for label, image in images.items()})

    def log_epoch_end(self, epoch: int, step: int, learning_rates: dict[str, float]) -> None:
        """The end of ``epoch`` at ``step``: learning rates to TensorBoard/W&B as ``lr/<optimiser>``.

        The step is remembered per epoch (:attr:`epoch_steps`, saved in :meth:`state_dict`), so
        test_fid.py can log an epoch checkpoint's scores at the step where it was saved.
        """
        if not self.is_main_process:
            return
        self.epoch_steps[int(epoch)] = int(step)
        self._track_scalars(step, {f"lr/{name}": value for name, value in learning_rates.items()})

    def close(self) -> None:
        """Flush and close TensorBoard and finish the W&B run (call once, when training stops)."""
        for tracker in self.trackers or []:
            tracker.close()
        self.trackers = []  # closed for good: later events go to the other sinks only

    def _step(self, step: int | None) -> int:
        """``step``, or the last step used when None; remembered as the last step."""
        if step is not None:
            self.last_step = int(step)
        return self.last_step

    def _track_scalars(self, step: int | None, values: dict[str, float]) -> None:
        trackers = self._active_trackers()
        step = self._step(step)
        for tracker in trackers:
            tracker.log_scalars(step, values)

    def _active_trackers(self) -> list[Tracker]:
        """The started trackers, starting them at the first call (after any load_state_dict)."""
        if self.trackers is None and self.is_main_process:
            self.trackers = open_trackers(
                log_dir=self.log_dir,
                name=self.name,
                tensorboard=self.tensorboard,
                wandb_run_id=self.wandb_run_id,
                wandb_project=self.wandb_project,
                config=self.config or None,
                purge_step=self.last_step + 1 if self.resumed else None,
                options_text=options_markdown(self.config) if self.config else "",
            )
        return self.trackers or []

    def _save_html(self, epoch: int, images: dict[str, np.ndarray]) -> None:
        """Save this epoch's images and the loss curve, then rewrite the page (newest epoch first)."""
        for label, image in images.items():
            save_image(image, os.path.join(self.img_dir, f"epoch{epoch:03d}_{label}.png"))
        self.html_epochs[epoch] = list(images)
        plot_losses(self.history, os.path.join(self.img_dir, "loss_curve.png"), title=f"{self.name} losses")
        page = HTML(self.web_dir, f"Experiment name = {self.name}")
        page.add_header("loss curve")
        page.add_images(["images/loss_curve.png"], ["losses"], ["images/loss_curve.png"], width=800)
        for shown_epoch in sorted(self.html_epochs, reverse=True):
            paths = [f"images/epoch{shown_epoch:03d}_{label}.png" for label in self.html_epochs[shown_epoch]]
            page.add_header(f"epoch [{shown_epoch}]")
            page.add_images(paths, self.html_epochs[shown_epoch], paths, width=self.display_winsize)
        page.save()

    def state_dict(self) -> dict[str, Any]:
        """The loss history, the epochs on the HTML page, the step axis and the W&B run id, as plain
        lists/dicts (weights_only-safe)."""
        return {
            "loss_history": {name: [(x, value) for x, value in points] for name, points in self.history.items()},
            "html_epochs": {epoch: list(labels) for epoch, labels in self.html_epochs.items()},
            "last_step": self.last_step,
            "epoch_steps": dict(self.epoch_steps),
            "wandb_run_id": self.wandb_run_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, so plots, the page, TensorBoard's step axis and the
        W&B run continue after a resume (states saved before TensorBoard/W&B support work too)."""
        self.history = {
            str(name): [(float(x), float(value)) for x, value in points]
            for name, points in state["loss_history"].items()
        }
        self.html_epochs = {
            int(epoch): [str(label) for label in labels] for epoch, labels in state["html_epochs"].items()
        }
        self.last_step = int(state.get("last_step", 0))
        self.epoch_steps = {int(epoch): int(step) for epoch, step in state.get("epoch_steps", {}).items()}
        if self.use_wandb and state.get("wandb_run_id"):
            self.wandb_run_id = str(state["wandb_run_id"])
        self.resumed = True
