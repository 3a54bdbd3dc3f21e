"""Helpers shared by several test modules (imported as ``helpers``: pytest puts tests/ on sys.path)."""

import argparse
import importlib.util
import re
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from models import find_model_using_name
from models.base_model import BaseModel
from util import commit
from util.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "fixtures"  # files the tests read (copies of published key lists)
PHOTO = ROOT / "datasets" / "single_demo" / "trainA" / "home.jpg"  # 512 x 384, a real photo
PAINTING = ROOT / "datasets" / "single_demo" / "trainB" / "starry_night.jpg"  # 752 x 600, a real painting

# The tiny training configuration every end-to-end test starts from: CPU, random VGG, 8 filters,
# 32² crops of 36² loads, no loader processes, one epoch plus one decay epoch, log everything.
TINY = [
    "--gpu_ids",
    "-1",
    "--vgg_weights",
    "random",
    "--ngf",
    "8",
    "--ndf",
    "8",
    "--load_size",
    "36",
    "--crop_size",
    "32",
    "--num_threads",
    "0",
    "--n_epochs",
    "1",
    "--n_epochs_decay",
    "1",
    "--display_freq",
    "1",
    "--update_html_freq",
    "1",
    "--print_freq",
    "1",
]
# LSeSim at that size: learned heads, augmented copies, local windows of 4, 16 queries.
LSESIM = ["--learned_attn", "--augment", "--patch_size", "4", "--patch_nums", "16"]
# --model mmsc at that size: its class's smoke options (one residual block, a 16-unit style MLP, ...).
MMSC_SMALL = ["--model", "mmsc", *find_model_using_name("mmsc").smoke_options]


def accepts(name: str, flag: str) -> bool:
    """Whether the training options of model ``name`` have ``flag``."""
    parser = argparse.ArgumentParser()
    find_model_using_name(name).modify_commandline_options(parser, True)
    return any(flag in action.option_strings for action in parser._actions)


def train_argv(name: str, root, ck, run: str = "m") -> list[str]:
    """train.py arguments of a tiny run ``run`` of model ``name`` (TINY, less the flags it lacks, plus the
    model's ``smoke_options``)."""
    tiny = list(TINY)
    if not accepts(name, "--vgg_weights"):
        i = tiny.index("--vgg_weights")
        del tiny[i : i + 2]
    return (
        ["--dataroot", str(root), "--checkpoints_dir", str(ck), "--name", run, "--model", name, "--pool_size", "2"]
        + tiny
        + list(find_model_using_name(name).smoke_options)
    )


def train_tiny_runs(names, root, ck) -> None:
    """One training step of a tiny run of each model in ``names`` on the data at ``root``, the run named after
    the model, under ``ck``."""
    import pytest
    import train as train_script

    monkeypatch = pytest.MonkeyPatch()
    try:
        for name in names:
            argv = train_argv(name, root, ck, run=name) + ["--max_iters", "1"]
            assert run_script(train_script, argv, monkeypatch) == 0, name
    finally:
        monkeypatch.undo()


def random_vgg16_features():
    """The layers of torchvision's vgg16().features (its own builder, without the 120M-parameter
    classifier) with random weights: torchvision's Kaiming initialisation and non-zero biases."""
    import torch
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    for module in features:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.normal_(module.bias, std=0.1)
    return features.eval().requires_grad_(False)


def random_vgg16_file(path):
    """:func:`random_vgg16_features` saved as a torchvision-flavour ``features.{i}`` state_dict file."""
    import torch

    torch.save({f"features.{k}": v for k, v in random_vgg16_features().state_dict().items()}, path)
    return path


def run_script(script, argv, monkeypatch):
    """Run a script's main through run_cli as the command line would; returns the exit code."""
    monkeypatch.setattr(sys, "argv", [script.__file__] + [str(a) for a in argv])
    try:
        run_cli(script.main)
    except SystemExit as exc:
        return exc.code
    return 0


def load_script(path: Path | str) -> ModuleType:
    """Import a script by its path, relative to the repo (scripts/*.py, datasets/*.py), as a module of its own."""
    path = ROOT / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_images(folder: Path, count: int, size=(40, 48), seed=0, mode="RGB"):
    """``count`` random ``size`` (H, W) PNGs named img_<i>.png in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        shape = (size[0], size[1], 3) if mode == "RGB" else size
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"img_{i}.png")


def write_unaligned(root: Path, count: int) -> Path:
    """An unaligned data set under ``root``: ``count`` random images in each of trainA, trainB, testA, testB."""
    for i, split in enumerate(["trainA", "trainB", "testA", "testB"]):
        write_images(root / split, count, seed=i)
    return root


def write_aligned(root: Path, count: int = 1) -> Path:
    """Aligned splits under ``root`` for the paired models (the template): ``count`` A | B images side by side in
    each of train and test."""
    write_images(root / "train", count, size=(36, 72), seed=5)
    write_images(root / "test", count, size=(36, 72), seed=6)
    return root


def write_every_layout(root: Path) -> Path:
    """One image in each folder of both layouts (trainA ... testB, train, test): data every model can train on
    (one image per side, as the single-image model needs; the paired ones read train and test)."""
    return write_aligned(write_unaligned(root, 1))


# ---- clips made from the repository's real photo ---------------------------------------------------------
def photo_pan(count: int, step: int, size=(64, 96), scale: int = 4, image: Path = PHOTO) -> list[np.ndarray]:
    """``count`` (H, W, 3) uint8 crops of the photo (or ``image``; shrunk by ``scale``), each ``step`` pixels right
    of the last."""
    photo = Image.open(image).convert("RGB")
    photo = np.asarray(photo.resize((photo.width // scale, photo.height // scale), Image.Resampling.BICUBIC))
    h, w = size
    return [np.ascontiguousarray(photo[8 : 8 + h, i * step : i * step + w]) for i in range(count)]


def write_clip(
    path: Path, frames: list[np.ndarray], *, codec="libx264", audio="aac", rate=Fraction(25), times=None, rotation=0
) -> None:
    """A clip of ``frames`` at ``rate`` (or at the presentation ``times`` in seconds: a variable rate), with a
    one-channel 440 Hz tone as long as the clip in ``audio`` (None: no sound), display ``rotation``."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        # AVI counts frames (time base 1 / rate); the others keep times in a fine time base (variable rates)
        tick = 1 / Fraction(rate) if path.suffix == ".avi" else Fraction(1, 90000)
        video.time_base = tick
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=48000, layout="mono") if audio else None
        times = times if times is not None else [i / rate for i in range(len(frames))]
        for image, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(round(t / tick)), tick
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound:
            samples = np.sin(2 * np.pi * 440 * np.arange(int(48000 * (float(times[-1]) + 0.1))) / 48000)
            frame_size = sound.codec_context.frame_size or 1024
            fmt = sound.codec_context.format.name
            for start in range(0, len(samples) - frame_size, frame_size):
                chunk = (samples[start : start + frame_size] * 0.3).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt" if fmt == "flt" else "fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                for packet in sound.encode(frame.reformat(format=fmt) if fmt not in ("flt", "fltp") else frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)


def reference_sections(path: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """Parse a published key list (tests/fixtures/checkpoint_keys_*.txt): '## net_X: ...' headers followed by
    'key (d0, d1, ...)' lines."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in path.read_text().splitlines():
        header = re.match(r"## (\w+):", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        elif line.strip():
            key, shape = re.match(r"(\S+) \(([\d, ]*)\)", line).groups()
            current[key] = tuple(int(d) for d in shape.split(",") if d.strip())
    return sections


# ---- reading what TensorBoard and W&B wrote, with their own readers --------------------------------

WANDB_OFFLINE_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_CONSOLE": "off",
    "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true",
    "WANDB_X_DISABLE_STATS": "true",
}


def wandb_offline(monkeypatch, tmp_path: Path) -> None:
    """W&B offline, quiet and with every file of its own under ``tmp_path``; a login attempt fails."""
    for key, value in WANDB_OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("CACHE", "CONFIG", "DATA", "ARTIFACT"):
        monkeypatch.setenv(f"WANDB_{key}_DIR", str(tmp_path / f"wandb_{key.lower()}"))
    for key in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(key, raising=False)
    from wandb.sdk import wandb_login

    def no_login(**kwargs):
        raise AssertionError("W&B tried to log in")

    monkeypatch.setattr(wandb_login, "_login", no_login)


def wandb_records(path: Path) -> list:
    """The records of a ``run-<id>.wandb`` file as ``wandb.proto`` Record messages.

    The file is a ':W&B' header (7 bytes) and then LevelDB-log framing: 32 KiB blocks of chunks, each
    a 7-byte header (CRC32, little-endian length, type 1 full / 2 first / 3 middle / 4 last) and data.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    records, pending, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:  # zero padding up to the end of the block
            position += room
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_run(run_dir: Path) -> dict:
    """An offline run folder (``offline-run-<time>-<id>``) read back: id, project, name, config and the
    history rows (key -> decoded JSON value), in logged order."""
    import json

    (path,) = run_dir.glob("run-*.wandb")
    run, config, history = None, {}, []
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({item.key: json.loads(item.value_json) for item in run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            row = {}
            for item in record.history.item:  # a logged dict (e.g. an image) comes as one item per field
                *parents, leaf = list(item.nested_key) or [item.key]
                target = row
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[leaf] = json.loads(item.value_json)
            history.append(row)
    assert run is not None, path
    return {"id": run.run_id, "project": run.project, "name": run.display_name, "config": config, "history": history}


def tensorboard_run(log_dir: Path):
    """TensorBoard's own reader over an event folder, everything loaded (no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


# ---- fault injection (through monkeypatch: the product code has no test hooks) ----------------------------
# the real ones, whatever a test has patched since
_SAVE_OPERATIONS = {operation: getattr(commit, "_" + operation) for operation in ("write", "replace", "remove")}


def on_save_operations(monkeypatch, hook) -> None:
    """Call ``hook(operation, path)`` before each file operation of a save ('write', 'replace', 'remove': the
    functions util/commit.py does them through), so a test can make a save fail or die at any one; ``hook``
    None puts the real operations back."""
    for operation, real in _SAVE_OPERATIONS.items():
        if hook is None:
            monkeypatch.setattr(commit, "_" + operation, real)
            continue

        def wrapped(*args, _operation=operation, _real=real):
            hook(_operation, args[1] if _operation == "replace" else args[0])  # the file written, replaced, removed
            return _real(*args)

        monkeypatch.setattr(commit, "_" + operation, wrapped)


def poison_losses(monkeypatch, names_for) -> None:
    """Make the loss parts ``names_for(model)`` (and so the step's loss and gradients) NaN in every
    ``BaseModel.optimizer_step`` from now on, as a diverging run would."""
    real = BaseModel.optimizer_step

    def optimizer_step(self, optimizer, compute_loss):
        names = frozenset(names_for(self))

        def poisoned():
            loss, parts = compute_loss()
            hit = names & parts.keys()
            if not hit:
                return loss, parts
            nan = torch.full((), float("nan"), device=loss.device)
            return loss * nan, {k: v * nan if k in hit else v for k, v in parts.items()}

        return real(self, optimizer, poisoned)

    monkeypatch.setattr(BaseModel, "optimizer_step", optimizer_step)


def poison_training(monkeypatch, train_module, names_for_step) -> None:
    """In train.py's steps: the losses ``names_for_step(counters)`` (counters as before the step:
    ``counters["steps"]`` steps done) are NaN in that step."""
    names = [frozenset()]
    real = train_module.guarded_step

    def guarded_step(model, batch, counters):
        names[0] = frozenset(names_for_step(counters))
        return real(model, batch, counters)

    monkeypatch.setattr(train_module, "guarded_step", guarded_step)
    poison_losses(monkeypatch, lambda model: names[0])


def build_training_model(argv: list) -> tuple[argparse.Namespace, BaseModel]:
    """Training options parsed from ``argv`` (any objects, as strings), the run's seed set, the model built
    (the random-VGG warning silenced) and set up: (opt, model)."""
    import warnings

    from models import create_model
    from options.train_options import TrainOptions
    from util.seeding import seed_everything

    opt = TrainOptions([str(a) for a in argv]).parse()
    seed_everything(opt.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG
        model = create_model(opt)
    model.setup()
    return opt, model
