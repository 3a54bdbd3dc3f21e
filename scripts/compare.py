"""Train several translation methods on one dataset with one budget, score them the same way, compare.

    python scripts/compare.py --dataroot datasets/photo2painting --output_dir comparisons/photo2painting \
        --n_epochs 4 --n_epochs_decay 2 --load_size 128 --crop_size 96 --features efficientnet_lite0 \
        --train_args "--netG resnet_6blocks --ngf 32 --ndf 32 --lr 0.0002 --num_threads 0"

Methods (``--methods``, default all): ``sc_fsesim`` (--model sc: the paper's command), ``sc_recommended``
(--model sc --lambda_identity 1: the README's, which keeps the photo's light and dark, docs/polarity.md),
``sc_lsesim`` (--model sc --learned_attn --augment --patch_size 32), ``cut``, ``fastcut`` (--model cut
--CUT_mode FastCUT) and ``cycle_gan``. Every method gets the same epochs, crop, batch, seeds and
``--train_args``; everything else is the method's published default.

``--seeds N`` trains every method N times, with seeds ``--seed`` ... ``--seed`` + N - 1 (runs named
``<method>_s<seed>``; with one seed, ``<method>``): one run per method ranks them by the luck of one
draw (initial weights, data order, which can decide even the polarity of the output). The table then
gives each method's mean ± standard deviation over its seeds, and below it every run's row.

Each run is trained by train.py in its own process (``<output_dir>/checkpoints/<run>``), translates
the test split at its own size with test.py's code, and is scored with the same code: FID and KID
(test_fid.py's, on ``--features``) against ``--real_dir``; SSIM and PSNR against the image of the same
name in ``--real_dir`` where there is one (the demo's testB holds painted versions of the test photos);
the spatially-correlative structure score (FSeSim, ImageNet VGG16, every location a query) between each
input and its translation; seconds per training step and the training process's peak resident memory.

Writes comparison.csv (one row per run), comparison_summary.csv (per method: mean and standard deviation
over the seeds), comparison.md (the Markdown tables) and comparison.png (rows: test inputs; columns:
input, each method's run with the first seed, the ground truth if any). A run whose training and scores
are done is skipped when the command is run again; one interrupted in training resumes (--continue_train).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import create_dataset
from data.image_folder import make_dataset
from evaluations.features import (
    FEATURES,
    build_feature_extractor,
    cached_folder_features,
    compute_features,
    list_images,
)
from evaluations.paired import paired_scores
from evaluations.realism import check_counts, realism_scores
from evaluations.report import write_scores_csv
from inference import Translator
from models.sesim import SpatialCorrelativeLoss, VGG16Features, VGGWeightsError
from models import batch_extras
from options.test_options import TestOptions
from test_fid import translate
from util.errors import UserError, run_cli
from util.image_io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]

METHODS: dict[str, list[str]] = {
    "sc_fsesim": ["--model", "sc"],
    "sc_recommended": ["--model", "sc", "--lambda_identity", "1"],
    "sc_lsesim": ["--model", "sc", "--learned_attn", "--augment", "--patch_size", "32"],
    "cut": ["--model", "cut"],
    "fastcut": ["--model", "cut", "--CUT_mode", "FastCUT"],
    "cycle_gan": ["--model", "cycle_gan"],
}
STRUCTURE_LAYERS = (4, 7, 9)  # relu3_1, relu4_1, relu4_3: the loss's default layers
COLUMNS = ("fid", "kid", "ssim", "psnr", "structure", "sec_per_step", "peak_rss_mb")
HEADINGS = ("FID ↓", "KID ↓", "SSIM ↑", "PSNR dB ↑", "structure ↓", "s/step", "peak MB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataroot", required=True, help="folder with trainA, trainB, testA, testB")
    parser.add_argument("--output_dir", required=True, help="checkpoints, translations and the comparison go here")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        metavar="METHOD",
        help=f"methods to compare, in this order (default all: {' '.join(METHODS)})",
    )
    parser.add_argument("--n_epochs", type=int, required=True, help="epochs at the initial learning rate (all)")
    parser.add_argument("--n_epochs_decay", type=int, required=True, help="epochs of linear decay (all)")
    parser.add_argument("--load_size", type=int, default=286, help="train.py --load_size (all)")
    parser.add_argument("--crop_size", type=int, default=256, help="train.py --crop_size (all)")
    parser.add_argument("--batch_size", type=int, default=1, help="train.py --batch_size (all)")
    parser.add_argument("--seed", type=int, default=0, help="train.py --seed (all); the first seed with --seeds")
    parser.add_argument("--seeds", type=int, default=1, help="runs per method, seeds --seed, --seed + 1, ...")
    parser.add_argument("--gpu_ids", default="-1", help="train.py / test.py --gpu_ids (default: the CPU)")
    parser.add_argument("--train_args", default="", help="more train.py options, the same for every method")
    parser.add_argument(
        "--vgg_weights",
        default="imagenet",
        help="VGG16 of the sc methods and of the structure score (imagenet, a path, random)",
    )
    parser.add_argument(
        "--features",
        default="inception",
        choices=sorted(FEATURES),
        help="FID/KID network (efficientnet_lite0 works offline; not comparable with papers)",
    )
    parser.add_argument("--feature_weights", default=None, help="weights of the FID/KID network")
    parser.add_argument("--real_dir", default=None, help="real target images; default <dataroot>/testB")
    parser.add_argument("--test_preprocess", default="none", help="test.py --preprocess for the translations")
    parser.add_argument("--figure_rows", type=int, default=4, help="test inputs shown in comparison.png")
    parser.add_argument("--figure_size", type=int, default=128, help="side of each tile in comparison.png")
    return parser.parse_args(argv)


# ---- training ------------------------------------------------------------------------------------
def seeds_of(args: argparse.Namespace) -> list[int]:
    return list(range(args.seed, args.seed + args.seeds))


def run_name(args: argparse.Namespace, method: str, seed: int) -> str:
    """The run's folder name: the method's own with one seed (as before --seeds), else <method>_s<seed>."""
    return method if args.seeds == 1 else f"{method}_s{seed}"


def train_argv(args: argparse.Namespace, method: str, seed: int | None = None) -> list[str]:
    """train.py's command line for ``method`` under the shared budget (``seed``: default ``--seed``)."""
    seed = args.seed if seed is None else seed
    argv = [
        "--dataroot",
        args.dataroot,
        "--name",
        run_name(args, method, seed),
        "--checkpoints_dir",
        checkpoints_dir(args),
        "--n_epochs",
        str(args.n_epochs),
        "--n_epochs_decay",
        str(args.n_epochs_decay),
        "--load_size",
        str(args.load_size),
        "--crop_size",
        str(args.crop_size),
        "--batch_size",
        str(args.batch_size),
        "--seed",
        str(seed),
        "--gpu_ids",
        args.gpu_ids,
    ]
    argv += METHODS[method] + (["--vgg_weights", args.vgg_weights] if method.startswith("sc_") else [])
    return argv + shlex.split(args.train_args)


def checkpoints_dir(args: argparse.Namespace) -> str:
    return os.path.join(args.output_dir, "checkpoints")


def run_train(argv: list[str]) -> tuple[int, float, float]:
    """Run train.py in a child process; returns (exit status, wall seconds, peak resident MB of the child).

    The peak is the child's own high-water mark (``VmHWM`` of /proc/<pid>/status, read every 0.2 s until it
    exits). ``ru_maxrss`` from wait4 would not do: on Linux a child starts from its parent's high-water mark,
    so once this process holds the scoring networks every later run would report at least its size.
    Ctrl-C reaches the child too (it saves 'latest' and stops); the status is then 130.
    """
    return run_child([sys.executable, str(ROOT / "train.py"), *argv])


def run_child(cmd: list[str]) -> tuple[int, float, float]:
    """:func:`run_train` for any command line: (exit status, wall seconds, the child's own peak MB)."""
    start = time.time()
    child = subprocess.Popen(cmd)
    peak_kib = 0
    while True:
        try:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kib = max(peak_kib, high_water_kib(child.pid))
            time.sleep(0.2)
        except KeyboardInterrupt:
            continue  # wait for the child to save and exit
    code = os.waitstatus_to_exitcode(status)
    if not peak_kib:  # no /proc (not Linux): the rusage figure, with the caveat above
        peak_kib = usage.ru_maxrss
    return code, time.time() - start, peak_kib / 1024.0


def high_water_kib(pid: int) -> int:
    """VmHWM of a live process in KiB (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def steps_done(args: argparse.Namespace, run: str) -> int:
    path = os.path.join(checkpoints_dir(args), run, "latest_train_state.pth")
    if not os.path.isfile(path):
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["counters"]["steps"])


def train_method(args: argparse.Namespace, method: str, seed: int) -> dict:
    """Train (or resume) ``method`` with ``seed`` unless done; returns the run's record {argv, seconds,
    timed_steps, peak_rss_mb, done}.

    seconds and timed_steps add up every attempt made by this script (interrupted ones included).
    """
    run = run_name(args, method, seed)
    path = os.path.join(checkpoints_dir(args), run, "compare_training.json")
    argv = train_argv(args, method, seed)
    record = json.loads(Path(path).read_text()) if os.path.isfile(path) else {}
    if record and record["argv"] != argv:
        raise UserError(
            f"{os.path.dirname(path)} was trained with other options ({shlex.join(record['argv'])}); "
            "give another --output_dir or delete that folder"
        )
    if record.get("done"):
        return record
    record = record or {"argv": argv, "seconds": 0.0, "timed_steps": 0, "peak_rss_mb": 0.0, "done": False}
    before = steps_done(args, run)
    resume = ["--continue_train"] if before else []
    print(f"  training: python train.py {shlex.join(argv + resume)}", flush=True)
    code, seconds, peak = run_train(argv + resume)
    # An interrupted attempt counts too: the steps it finished are in its checkpoint.
    timed = record["timed_steps"] + steps_done(args, run) - before
    record.update(
        seconds=record["seconds"] + seconds,
        timed_steps=timed,
        peak_rss_mb=max(record["peak_rss_mb"], peak),
        done=code == 0,
    )
    write_text_atomic(path, json.dumps(record, indent=1))
    if code == 130 or code < 0:
        raise KeyboardInterrupt
    if code != 0:
        raise UserError(f"training {run} failed (train.py exit status {code}); see its message above")
    return record


# ---- scoring -------------------------------------------------------------------------------------
def translate_method(args: argparse.Namespace, run: str) -> str:
    """fake_B of every test input as <output_dir>/translations/<run>/<input name>.png, loaded and translated
    as test.py and test_fid.py do (the inference package's loader and loop)."""
    opt = TestOptions(
        [
            "--dataroot",
            args.dataroot,
            "--name",
            run,
            "--checkpoints_dir",
            checkpoints_dir(args),
            "--gpu_ids",
            args.gpu_ids,
            "--preprocess",
            args.test_preprocess,
            "--num_test",
            "0",
        ]
    ).parse()
    dataset = create_dataset(opt, extras=batch_extras(opt))
    folder = os.path.join(args.output_dir, "translations", run)
    return translate(Translator.from_options(opt), dataset, folder, len(dataset))


def load_image(path: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], resized (bicubic) to ``size`` = (W, H) when given."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def by_stem(folder: str) -> dict[str, str]:
    return {Path(p).stem: p for p in make_dataset(folder)} if os.path.isdir(folder) else {}


def structure_score(input_dir: str, fake_dir: str, vgg: VGG16Features, device: torch.device) -> float:
    """Mean FSeSim loss between each input and its translation (same name), every location a query."""
    loss = SpatialCorrelativeLoss(mode="cos", patch_nums=0, patch_size=64)
    inputs, fakes = by_stem(input_dir), by_stem(fake_dir)
    values = []
    for name in sorted(inputs.keys() & fakes.keys()):
        fake = load_image(fakes[name])
        source = load_image(inputs[name], (fake.shape[3], fake.shape[2]))
        with torch.no_grad():
            feats = vgg(torch.cat([source, fake]).to(device))
            values.append(float(loss([f[:1] for f in feats], [f[1:] for f in feats])))
    if not values:
        raise UserError(f"no translation in {fake_dir} has an input of the same name in {input_dir}")
    return float(np.mean(values))


def score_method(args: argparse.Namespace, method: str, seed: int, scorers: dict, record: dict) -> dict:
    """One row of the comparison: realism, paired, structure and cost scores of ``method``'s run with ``seed``."""
    run = run_name(args, method, seed)
    folder = translate_method(args, run)
    fake = compute_features(list_images(folder), scorers["extractor"], 50, scorers["device"])
    realism = realism_scores(scorers["real"], fake, kid_subsets=100, kid_subset_size=1000, prdc_k=0, seed=args.seed)
    row = {
        "method": method,
        "seed": seed,
        "images": len(fake),
        "fid": realism["fid"],
        "kid": realism["kid"],
        "ssim": math.nan,
        "psnr": math.nan,
    }
    try:
        paired = paired_scores(folder, scorers["real_dir"])["mean"]
        row.update(ssim=paired["ssim"], psnr=paired["psnr"])
    except UserError:
        pass  # no ground truth of the same names: the paired scores stay empty
    row["structure"] = structure_score(os.path.join(args.dataroot, "testA"), folder, scorers["vgg"], scorers["device"])
    row.update(
        steps=steps_done(args, run),
        sec_per_step=record["seconds"] / max(record["timed_steps"], 1),
        peak_rss_mb=record["peak_rss_mb"],
    )
    return row


def build_scorers(args: argparse.Namespace) -> dict:
    """The feature network with the real features, the real folder, the VGG16 of the structure score."""
    ids = [int(i) for i in args.gpu_ids.split(",") if int(i) >= 0]
    device = torch.device(f"cuda:{ids[0]}" if ids else "cpu")
    real_dir = args.real_dir or os.path.join(args.dataroot, "testB")
    extractor = build_feature_extractor(args.features, weights=args.feature_weights, device=device)
    real = cached_folder_features(
        real_dir, extractor, os.path.join(args.output_dir, "fid_stats_cache"), 50, device, option="--real_dir"
    )
    try:
        vgg = VGG16Features(layers=STRUCTURE_LAYERS, weights=args.vgg_weights).to(device)
    except (VGGWeightsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"scores: {extractor.description} on {len(real)} real images in {real_dir}; structure: {vgg.description}")
    return {"extractor": extractor, "real": real, "real_dir": real_dir, "vgg": vgg, "device": device}


# ---- outputs -------------------------------------------------------------------------------------
LOWER_IS_BETTER = {"fid", "kid", "structure", "sec_per_step", "peak_rss_mb"}


def _number(key: str, value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.4f}" if key == "kid" else f"{value:.3g}")


def _best(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if not math.isnan(r[key])]
    return (min if key in LOWER_IS_BETTER else max)(values) if values else None


def markdown_table(rows: list[dict], label: str = "method") -> str:
    """Rows as a Markdown table, the best value of each score in bold (``label``: the first column's key)."""
    best = {key: _best(rows, key) for key in COLUMNS}
    lines = [f"| {label} | " + " | ".join(HEADINGS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        cells = []
        for key in COLUMNS:
            text = _number(key, row[key])
            cells.append(f"**{text}**" if row[key] == best[key] and len(rows) > 1 else text)
        lines.append(f"| {row[label]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarise(rows: list[dict]) -> list[dict]:
    """Per method, in the rows' order: the number of seeds and each score's mean and sample standard deviation
    over them (``<key>`` and ``<key>_sd``; the sd is nan for one seed)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = []
    for method in methods:
        runs = [r for r in rows if r["method"] == method]
        entry: dict = {"method": method, "seeds": len(runs)}
        for key in COLUMNS:
            values = np.array([r[key] for r in runs], dtype=np.float64)
            finite = values[~np.isnan(values)]
            entry[key] = float(finite.mean()) if len(finite) else math.nan
            entry[f"{key}_sd"] = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
        summary.append(entry)
    return summary


def summary_table(summary: list[dict]) -> str:
    """Mean ± sd over the seeds per method; the best mean of each score in bold."""
    best = {key: _best(summary, key) for key in COLUMNS}
    lines = ["| method | seeds | " + " | ".join(HEADINGS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for entry in summary:
        cells = []
        for key in COLUMNS:
            text = _number(key, entry[key])
            if not math.isnan(entry[f"{key}_sd"]):
                text += f" ± {_number(key, entry[key + '_sd'])}"
            cells.append(f"**{text}**" if entry[key] == best[key] and len(summary) > 1 else text)
        lines.append(f"| {entry['method']} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(args: argparse.Namespace, rows: list[dict], real_dir: str, path: str) -> None:
    """Grid: one row per test input (the first ``--figure_rows`` by name); columns input, methods, truth."""
    inputs = by_stem(os.path.join(args.dataroot, "testA"))
    first = {}
    for row in rows:  # each method's run with the first seed
        first.setdefault(row["method"], run_name(args, row["method"], int(row.get("seed", args.seed))))
    fakes = {method: by_stem(os.path.join(args.output_dir, "translations", run)) for method, run in first.items()}
    truths = by_stem(real_dir)
    names = sorted(set(inputs).intersection(*[set(f) for f in fakes.values()]))[: args.figure_rows]
    columns = [inputs] + list(fakes.values()) + ([truths] if names and all(n in truths for n in names) else [])
    size, gap = args.figure_size, 4
    grid = Image.new("RGB", (len(columns) * (size + gap) - gap, max(len(names), 1) * (size + gap) - gap), "white")
    for r, name in enumerate(names):
        for c, source in enumerate(columns):
            with Image.open(source[name]) as tile:
                tile = tile.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
                grid.paste(tile, (c * (size + gap), r * (size + gap)))
    grid.save(path)
    labels = ["input"] + list(fakes) + (["ground truth"] if len(columns) > len(fakes) + 1 else [])
    print(f"figure: {path} (columns: {', '.join(labels)})")


def write_outputs(args: argparse.Namespace, rows: list[dict], real_dir: str) -> None:
    write_scores_csv(rows, os.path.join(args.output_dir, "comparison.csv"))
    if args.seeds == 1:
        table = markdown_table(rows)
    else:
        summary = summarise(rows)
        write_scores_csv(summary, os.path.join(args.output_dir, "comparison_summary.csv"))
        for row in rows:
            row["run"] = run_name(args, row["method"], int(row["seed"]))
        table = (
            f"Mean ± standard deviation over seeds {args.seed}-{args.seed + args.seeds - 1}:\n\n"
            + summary_table(summary)
            + "\nEvery run:\n\n"
            + markdown_table(rows, label="run")
        )
    write_text_atomic(os.path.join(args.output_dir, "comparison.md"), table)
    figure(args, rows, real_dir, os.path.join(args.output_dir, "comparison.png"))
    print(table)


def check_arguments(args: argparse.Namespace) -> None:
    """Every argument checked before anything is trained or translated, each mistake one line."""
    for split in ("trainA", "trainB", "testA"):
        list_images(os.path.join(args.dataroot, split), option=f"--dataroot ({split})")
    for option in ("n_epochs", "n_epochs_decay"):
        if getattr(args, option) < 0:
            raise UserError(f"--{option} {getattr(args, option)}: must be 0 or more")
    if args.n_epochs + args.n_epochs_decay < 1:
        raise UserError("--n_epochs and --n_epochs_decay: train at least one epoch in all")
    for option in ("load_size", "crop_size", "batch_size", "seeds", "figure_rows", "figure_size"):
        if getattr(args, option) < 1:
            raise UserError(f"--{option} {getattr(args, option)}: must be at least 1")
    if args.crop_size > args.load_size:
        raise UserError(f"--crop_size {args.crop_size}: must not exceed --load_size {args.load_size}")
    try:
        shlex.split(args.train_args)
    except ValueError as exc:
        raise UserError(f"--train_args {args.train_args!r}: {exc}") from None
    real_dir = args.real_dir or os.path.join(args.dataroot, "testB")
    real = len(list_images(real_dir, option="--real_dir"))
    check_counts(real, len(list_images(os.path.join(args.dataroot, "testA"), option="--dataroot (testA)")), 0)


def main() -> None:
    args = parse_args()
    check_arguments(args)
    os.makedirs(args.output_dir, exist_ok=True)
    scorers = None
    rows = []
    runs = [(method, seed) for seed in seeds_of(args) for method in args.methods]  # every method once per seed
    for index, (method, seed) in enumerate(runs, 1):
        run = run_name(args, method, seed)
        score_path = os.path.join(args.output_dir, "scores", f"{run}.json")
        print(f"[{index}/{len(runs)}] {run}", flush=True)
        record = train_method(args, method, seed)
        if os.path.isfile(score_path):
            print("  trained and scored before: skipped", flush=True)
            row = json.loads(Path(score_path).read_text())
            rows.append({"seed": seed, **row})  # files written before --seeds have no seed
            continue
        print("  scoring", flush=True)
        scorers = scorers or build_scorers(args)
        row = score_method(args, method, seed, scorers, record)
        os.makedirs(os.path.dirname(score_path), exist_ok=True)
        write_text_atomic(score_path, json.dumps(row, indent=1))
        rows.append(row)
    order = {method: i for i, method in enumerate(args.methods)}
    rows.sort(key=lambda r: (order[r["method"]], r["seed"]))
    write_outputs(args, rows, args.real_dir or os.path.join(args.dataroot, "testB"))


if __name__ == "__main__":
    run_cli(main)
