"""TensorBoard and Weights & Biases (offline) behind the training logger, read back with their own readers."""

import io
import logging
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import TINY, run_script as run, tensorboard_run, wandb_offline, wandb_run, write_unaligned
import train as train_script
from util.logger import Logger

LOSS_LINE = re.compile(r"^\(epoch: \d+, iters: \d+, time: [\d.]+, data: [\d.]+\) (.*)$")


def make_data(root, count):
    return write_unaligned(root, count)


def train_args(tmp_path, name, count=3):
    data = tmp_path / "data"
    if not data.exists():
        make_data(data, count)
    return ["--dataroot", data, "--name", name, "--checkpoints_dir", tmp_path / "ck"] + TINY


def logged_losses(loss_log):
    """Each loss line of loss_log.txt as name -> value (3 decimals), in order."""
    rows = []
    for line in loss_log.read_text().splitlines():
        match = LOSS_LINE.match(line)
        if match:
            pairs = re.findall(r"(\w+): (-?[\d.]+)", match.group(1))
            rows.append({name: float(value) for name, value in pairs})
    return rows


def png(data):
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        return np.asarray(image.convert("RGB"))


def wandb_runs(run_dir):
    return [wandb_run(folder) for folder in sorted((run_dir / "wandb").glob("offline-run-*"))]


def rows_with(history, prefix):
    """images_seen -> {key: value} of the history rows holding keys that start with ``prefix``."""
    found = {}
    for row in history:
        values = {key: value for key, value in row.items() if key.startswith(prefix)}
        if values:
            found.setdefault(row["images_seen"], {}).update(values)
    return found


def test_tensorboard_and_wandb_hold_the_losses_lrs_images_and_options(tmp_path, monkeypatch):
    wandb_offline(monkeypatch, tmp_path)
    args = train_args(tmp_path, "tb") + [
        "--print_freq",
        "2",
        "--display_freq",
        "3",
        "--lr",
        "0.0002",
        "--tensorboard",
        "--use_wandb",
    ]
    assert run(train_script, args, monkeypatch) == 0
    run_dir = tmp_path / "ck" / "tb"
    # 3 images per epoch, 2 epochs, batch 1: losses at images 2, 4, 6; visuals at 3, 6; epochs end at 3, 6.
    lines = logged_losses(run_dir / "loss_log.txt")
    names = sorted(lines[0])
    assert len(lines) == 3 and "G_GAN" in names

    board = tensorboard_run(run_dir / "tensorboard")
    for name in names:
        events = board.Scalars(f"loss/{name}")
        assert [e.step for e in events] == [2, 4, 6], name
        assert [e.value for e in events] == pytest.approx([line[name] for line in lines], abs=5.1e-4), name
    # The linear policy: lr * (1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1)) after each epoch.
    expected_lr = [0.0002 * (1 - max(0, epoch + 1 - 1) / 2) for epoch in (1, 2)]
    for optimiser in ("G", "D"):
        events = board.Scalars(f"lr/{optimiser}")
        assert [e.step for e in events] == [3, 6] and [e.value for e in events] == pytest.approx(expected_lr)
    labels = sorted(p.name[len("epoch002_") : -4] for p in (run_dir / "web" / "images").glob("epoch002_*.png"))
    assert "fake_B" in labels and sorted(board.Tags()["images"]) == [f"visuals/{label}" for label in labels]
    for label in labels:
        events = board.Images(f"visuals/{label}")
        assert [e.step for e in events] == [3, 6] and (events[1].width, events[1].height) == (32, 32)
        # The last visuals of epoch 2 are also the HTML page's epoch-2 images.
        html_image = png(run_dir / "web" / "images" / f"epoch002_{label}.png")
        np.testing.assert_array_equal(png(events[1].encoded_image_string), html_image)
    (text,) = board.Tensors("options/text_summary")
    options = text.tensor_proto.string_val[0].decode()
    assert "    ngf: 8\n" in options and "    name: tb\n" in options and "    tensorboard: True" in options

    # W&B: one offline run, the same scalars (TensorBoard keeps float32), the same images, the options.
    (wb,) = wandb_runs(run_dir)
    state = torch.load(run_dir / "latest_train_state.pth", weights_only=True)
    assert wb["id"] == state["logger"]["wandb_run_id"] and wb["project"] == "sesim" and wb["name"] == "tb"
    assert wb["config"]["ngf"] == 8 and wb["config"]["lr"] == 0.0002 and wb["config"]["name"] == "tb"
    losses = rows_with(wb["history"], "loss/")
    assert sorted(losses) == [2, 4, 6]
    for name in names:
        tb_values = [e.value for e in board.Scalars(f"loss/{name}")]
        assert [np.float32(losses[step][f"loss/{name}"]) for step in (2, 4, 6)] == tb_values, name
    lrs = rows_with(wb["history"], "lr/")
    assert sorted(lrs) == [3, 6] and [lrs[step]["lr/G"] for step in (3, 6)] == pytest.approx(expected_lr)
    media = rows_with(wb["history"], "visuals/")
    assert sorted(media) == [3, 6] and sorted(media[6]) == [f"visuals/{label}" for label in labels]
    for label in labels:
        image = media[6][f"visuals/{label}"]
        assert image["_type"] == "image-file" and image["width"] == 32
        (folder,) = (run_dir / "wandb").glob("offline-run-*")
        np.testing.assert_array_equal(
            png(folder / "files" / image["path"]), png(run_dir / "web" / "images" / f"epoch002_{label}.png")
        )


def test_resumed_run_continues_the_step_axis_and_the_wandb_run(tmp_path, monkeypatch):
    wandb_offline(monkeypatch, tmp_path)
    from models.sc_model import SCModel

    # 5 images per epoch; 'latest' saved at 2 images; the run crashes in step 4, after logging step 3.
    args = train_args(tmp_path, "re", count=5) + ["--save_latest_freq", "2", "--tensorboard", "--use_wandb"]
    original, calls = SCModel.optimize_parameters, []

    def crashing(self):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("simulated crash")
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SCModel, "optimize_parameters", crashing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run(train_script, args, monkeypatch)
    run_dir = tmp_path / "ck" / "re"
    state = torch.load(run_dir / "latest_train_state.pth", weights_only=True)
    assert state["counters"]["images"] == 2 and state["logger"]["last_step"] == 2
    assert run(train_script, args + ["--continue_train", "--max_iters", "6"], monkeypatch) == 0

    # TensorBoard: one point per step; the resumed session's file starts by purging from step 3 on.
    board = tensorboard_run(run_dir / "tensorboard")
    assert [e.step for e in board.Scalars("loss/G_GAN")] == [1, 2, 3, 4, 5, 6]
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 2
    starts = [
        event.step
        for event in EventFileLoader(str(files[1])).Load()
        if event.HasField("session_log") and event.session_log.status == event.session_log.START
    ]
    assert starts == [3]
    # W&B: the same run id in both sessions, the second continuing at step 3.
    first, second = wandb_runs(run_dir)
    assert first["id"] == second["id"] == state["logger"]["wandb_run_id"]
    first_losses, second_losses = rows_with(first["history"], "loss/"), rows_with(second["history"], "loss/")
    assert sorted(first_losses) == [1, 2, 3] and sorted(second_losses) == [3, 4, 5, 6]
    # Resuming is exact, so step 3 is logged with the same value by both sessions.
    assert first_losses[3] == second_losses[3]
    assert second["config"]["continue_train"] is True and second["config"]["ngf"] == 8


def tracker_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "util.logger" and r.levelno == logging.WARNING]


def test_missing_packages_warn_once_and_training_completes(tmp_path, monkeypatch, caplog):
    wandb_offline(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` raise ImportError
    monkeypatch.setitem(sys.modules, "wandb", None)
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        assert run(train_script, train_args(tmp_path, "miss") + ["--tensorboard", "--use_wandb"], monkeypatch) == 0
    assert tracker_warnings(caplog) == [
        "tensorboard is not installed; install it with `pip install tensorboard` — continuing without it",
        "wandb is not installed; install it with `pip install wandb` — continuing without it",
    ]
    run_dir = tmp_path / "ck" / "miss"
    assert len(logged_losses(run_dir / "loss_log.txt")) == 6
    assert not (run_dir / "tensorboard").exists() and not (run_dir / "wandb").exists()
    assert torch.load(run_dir / "latest_train_state.pth", weights_only=True)["counters"]["steps"] == 6


def test_wandb_that_cannot_start_warns_once_and_training_completes(tmp_path, monkeypatch, caplog):
    import wandb

    wandb_offline(monkeypatch, tmp_path)

    def not_logged_in(**kwargs):
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.setattr(wandb, "init", not_logged_in)
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        assert run(train_script, train_args(tmp_path, "nokey") + ["--use_wandb", "--max_iters", "4"], monkeypatch) == 0
    assert tracker_warnings(caplog) == [
        "Weights & Biases could not start (No API key configured. Use `wandb login` to log in.) — continuing without it"
    ]
    assert len(logged_losses(tmp_path / "ck" / "nokey" / "loss_log.txt")) == 4


def test_other_ranks_start_no_tracker(tmp_path, monkeypatch):
    wandb_offline(monkeypatch, tmp_path)
    logger = Logger(
        log_dir=str(tmp_path / "exp"),
        name="exp",
        is_main_process=False,
        tensorboard=True,
        use_wandb=True,
        config={"ngf": 8},
    )
    logger.log_scalars(1, 0.5, 1, {"G": 1.0}, 0.0, 0.0, step=1)
    logger.log_images(1, {"real_A": torch.zeros(1, 3, 8, 8)}, save_result=True, step=1)
    logger.log_epoch_end(1, 1, {"G": 0.1})
    logger.close()
    assert not (tmp_path / "exp").exists() and logger.state_dict()["wandb_run_id"] is None
