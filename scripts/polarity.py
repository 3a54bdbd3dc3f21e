#!/usr/bin/env python3
"""Does training keep the photo's light and dark? Train several seeds, measure the polarity of each run.

    python scripts/polarity.py --seeds 0-7 --tag default
    python scripts/polarity.py --seeds 0-7 --tag idt1 -- --lambda_identity 1
    python scripts/polarity.py --code published --published_root ../F-LSeSim --seeds 0-7 --tag default

Each seed is one training run of ``--model sc`` on ``--dataroot`` (default: the embedded photo->painting
demo set) with the options of the side-by-side comparison with the published code: load 143, crop 128,
4 + 1 epochs, lr 2e-4, layers 4,7,9, patch 64, cos, lsgan, FSeSim, batch 1, every other option at its
default, CPU, one thread per run, ``--jobs`` runs at a time. Options after ``--`` are appended to every
run's command line (the last value of an option wins, in both codes). ``--code published`` trains the
published F-LSeSim ``train.py`` (a checkout at ``--published_root``) through
``scripts/published_train.py``, seeded and with the same VGG16 weight file.

Every epoch's generator (``<epoch>_net_G.pth``) is then translated on the test photos (``testA``, at their
own size) with this project's generator code, and scored:

- ``r``: Pearson correlation of input and output luminance per photo; ``r_mean`` is its mean over the
  photos. A run *keeps polarity* when ``r_mean > 0``; ``n_neg`` counts photos with ``r < 0``.
- ``ssim``: SSIM of the output to the painted ground truth (``testB``, same names), the mean over photos.
- ``colour``: colour-histogram distance (0..1) of the output to the painted truth: whether the palette was
  taken, wherever it is (the photos themselves score ``photo`` in the table's first line).
- ``lpips`` (``--model mmsc``): the LPIPS between every two of a photo's ``--n_styles`` translations, the mean
  over the photos: how much the style code changes the output (evaluations/lpips.py).

``--single`` measures ``--model sinsc`` instead: each seed trains on the one photo and the one painting of
``--dataroot`` (default: the embedded ``datasets/single_demo``) with ``make demo-single``'s options (960 crops
of 64² in batches of 4, 1 + 1 epochs, 480 steps), and the whole photo is translated at its own size;
``ssim`` is then the output's SSIM to the photo itself (the structure kept) and ``colour`` its distance to
the painting's palette.

``--figure PATH TAGS SEEDS`` trains nothing: it draws the first test photos, their painted truth and the
last-epoch output of each listed setting (comma-separated tags) and seed, one column each.
``--loss_check`` trains nothing: it prints what the spatially-correlative loss and the perceptual loss
say of a test photo against its painted truth, the inverted truth, the inverted photo and another photo.

Writes ``<out>/runs.csv`` (one row per run and epoch, appended across calls) and prints a Markdown table
per (code, tag, epoch): runs that kept polarity, mean and spread of ``r_mean`` and SSIM. Runs whose last
checkpoint exists are not trained again, so an interrupted call resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data.image_folder import make_dataset
from inference import Translator
from util.errors import UserError, run_cli
from util.metrics import colour_distance, luminance, ssim

ROOT = Path(__file__).resolve().parents[1]
BASE: list[str] = []  # the runs' shared options: BASE_OPTIONS, or SINGLE_OPTIONS with --single

# The comparison's options, shared by both codes (each code's every other option at its default).
BASE_OPTIONS = [
    "--model",
    "sc",
    "--load_size",
    "143",
    "--crop_size",
    "128",
    "--n_epochs",
    "4",
    "--n_epochs_decay",
    "1",
    "--lr",
    "0.0002",
    "--attn_layers",
    "4,7,9",
    "--patch_size",
    "64",
    "--loss_mode",
    "cos",
    "--gan_mode",
    "lsgan",
    "--gpu_ids",
    "-1",
    "--num_threads",
    "0",
    "--display_id",
    "0",
    "--save_epoch_freq",
    "1",
    "--print_freq",
    "1000000",
    "--display_freq",
    "1000000",
    "--update_html_freq",
    "1000000",
    "--no_html",
]
# --single: make demo-single's options for --model sinsc (scripts/demo_sinsc.sh)
SINGLE_OPTIONS = [
    *("--model", "sinsc", "--crop_size", "64", "--batch_size", "4", "--max_dataset_size", "960"),
    *("--n_epochs", "1", "--n_epochs_decay", "1", "--gpu_ids", "-1", "--num_threads", "0", "--display_id", "0"),
    *("--save_epoch_freq", "1", "--print_freq", "1000000", "--display_freq", "1000000"),
    *("--update_html_freq", "1000000", "--no_html"),
]
FIELDS = ["code", "tag", "seed", "epoch", "r_mean", "r_min", "n_neg", "n_images", "ssim", "colour", "lpips", "train_s"]


def parse_seeds(text: str) -> list[int]:
    """'0-7' or '0,3,5' or '2' -> list of ints."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise UserError(f"--seeds: {text!r} is not a list like 0-7 or 0,3,5") from None
    return seeds


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--code", choices=["project", "published"], default="project")
    p.add_argument("--published_root", default=None, help="checkout of the published code (--code published)")
    p.add_argument("--seeds", default="0-7")
    p.add_argument("--tag", default="default", help="name of this setting in the table and the run folders")
    p.add_argument("--dataroot", default=None, help="default: datasets/photo2painting (--single: single_demo)")
    p.add_argument("--single", action="store_true", help="--model sinsc on one photo and one painting")
    p.add_argument("--out", default="./polarity_runs", help="run folders and runs.csv go here")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (one thread each)")
    p.add_argument("--vgg_weights", default=None, help="VGG16 weight file for both codes (default: torch hub cache)")
    p.add_argument("--score_only", action="store_true", help="score existing runs, train nothing")
    p.add_argument("--n_styles", type=int, default=4, help="--model mmsc: style codes per test photo")
    p.add_argument(
        "--figure",
        nargs=3,
        metavar=("PATH", "TAGS", "SEEDS"),
        help="draw outputs of existing runs (tags comma-separated), train nothing",
    )
    p.add_argument("--loss_check", action="store_true", help="print the losses' view of inverted images, train nothing")
    args = p.parse_args(argv[:cut])
    if args.code == "published" and not args.published_root:
        raise UserError("--code published needs --published_root (a checkout of the published F-LSeSim code)")
    if args.single and args.code == "published":
        raise UserError("--single: only --code project (the published sinsc needs a GPU build)")
    args.dataroot = args.dataroot or str(ROOT / "datasets" / ("single_demo" if args.single else "photo2painting"))
    global BASE
    BASE = SINGLE_OPTIONS if args.single else BASE_OPTIONS
    for name in ("trainA", "trainB") if args.single else ("testA", "testB", "trainA", "trainB"):
        if not os.path.isdir(os.path.join(args.dataroot, name)):
            raise UserError(f"--dataroot: {args.dataroot} has no {name} folder")
    return args, argv[cut + 1 :]


def run_name(args: argparse.Namespace, seed: int) -> str:
    return f"{args.code}_{args.tag}_s{seed}"


def option(extra: list[str], key: str, default: str | None = None) -> str | None:
    """The value of ``key`` on the run's command line (the last one wins), or ``default``."""
    argv = BASE + extra
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == key]
    return values[-1] if values else default


def last_epoch(extra: list[str]) -> int:
    """n_epochs + n_epochs_decay of the command line."""
    return int(option(extra, "--n_epochs")) + int(option(extra, "--n_epochs_decay"))


def generator_spec(extra: list[str]) -> dict:
    """The generator architecture the runs train (both codes' defaults: resnet_9blocks, 64, instance), as the
    translation API's architecture options (a published run's folder records none)."""
    norm = option(extra, "--normG", option(extra, "--norm", "instance"))
    return {
        "netG": option(extra, "--netG", "resnet_9blocks"),
        "ngf": int(option(extra, "--ngf", "64")),
        "normG": norm,
        "no_dropout": True,
        "no_antialias": "--no_antialias" in extra,
        "no_antialias_up": "--no_antialias_up" in extra,
    }


def train_command(args: argparse.Namespace, seed: int, extra: list[str]) -> list[str]:
    common = [
        "--dataroot",
        os.path.abspath(args.dataroot),
        "--name",
        run_name(args, seed),
        "--checkpoints_dir",
        os.path.abspath(args.out),
    ] + BASE
    if args.code == "project":
        vgg = ["--vgg_weights", args.vgg_weights] if args.vgg_weights else []
        return [sys.executable, str(ROOT / "train.py"), "--seed", str(seed)] + vgg + common + extra
    vgg = ["--vgg_weights", args.vgg_weights] if args.vgg_weights else []
    return (
        [
            sys.executable,
            str(ROOT / "scripts" / "published_train.py"),
            "--published_root",
            os.path.abspath(args.published_root),
            "--seed",
            str(seed),
        ]
        + vgg
        + ["--"]
        + common
        + extra
    )


def train_all(args: argparse.Namespace, seeds: list[int], extra: list[str]) -> dict[int, float]:
    """Train the seeds whose last checkpoint is missing, ``--jobs`` at a time; seconds per run."""
    final = last_epoch(extra)
    net = "G" if option(extra, "--model") in ("sc", "sinsc") else "G_A"
    todo = [s for s in seeds if not os.path.isfile(os.path.join(args.out, run_name(args, s), f"{final}_net_{net}.pth"))]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: dict[int, tuple[subprocess.Popen, float, object]] = {}
    took: dict[int, float] = {}
    os.makedirs(args.out, exist_ok=True)
    cwd = os.path.abspath(args.published_root) if args.code == "published" else str(ROOT)
    while todo or running:
        while todo and len(running) < args.jobs:
            seed = todo.pop(0)
            log = open(os.path.join(args.out, run_name(args, seed) + ".log"), "w")
            proc = subprocess.Popen(
                train_command(args, seed, extra), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            running[seed] = (proc, time.time(), log)
            print(f"training {run_name(args, seed)}", flush=True)
        time.sleep(2)
        for seed, (proc, start, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[seed]
            took[seed] = time.time() - start
            if proc.returncode != 0:
                raise UserError(f"{run_name(args, seed)} failed (exit {proc.returncode}): see {log.name}")
            print(f"done {run_name(args, seed)} in {took[seed]:.0f} s", flush=True)
    return took


def load_rgb(path: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))


def test_pairs(dataroot: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, painted truth) of every test photo that has a ground truth of the same name; with ``--single``
    (no test split) the one (photo, painting) pair of trainA and trainB."""
    if BASE is SINGLE_OPTIONS:
        photos, paintings = (sorted(make_dataset(os.path.join(dataroot, d))) for d in ("trainA", "trainB"))
        if not photos or not paintings:
            raise UserError(f"--dataroot: {dataroot} needs a photo in trainA and a painting in trainB")
        return [(load_rgb(photos[0]), load_rgb(paintings[0]))]
    truths = {Path(p).stem: p for p in make_dataset(os.path.join(dataroot, "testB"))}
    pairs = [
        (load_rgb(p), load_rgb(truths[Path(p).stem]))
        for p in sorted(make_dataset(os.path.join(dataroot, "testA")))
        if Path(p).stem in truths
    ]
    if not pairs:
        raise UserError(f"--dataroot: no photo in {dataroot}/testA has a painting of the same name in testB")
    return pairs


def translate_sc(path: str, pairs: list[tuple[np.ndarray, np.ndarray]], spec: dict) -> list[np.ndarray]:
    """Each photo translated by the ``sc`` generator file ``path``, loaded and run by the translation API."""
    translator = Translator.load(path, model="sc", options=spec)
    outputs = []
    for photo, _ in pairs:
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
        outputs.append(translator.translate(x)[0].permute(1, 2, 0).double().numpy())
    return outputs


def translate_test_py(args: argparse.Namespace, seed: int, epoch: int, extra: list[str]) -> list[list[np.ndarray]]:
    """Every output of this project's ``test.py`` for the run's epoch (mmsc: ``--n_styles`` of them per photo)."""
    name, model = run_name(args, seed), option(extra, "--model")
    results = os.path.join(args.out, "results")
    cmd = [
        sys.executable,
        str(ROOT / "test.py"),
        "--dataroot",
        os.path.abspath(args.dataroot),
        "--name",
        name,
        "--checkpoints_dir",
        os.path.abspath(args.out),
        "--model",
        model,
        "--gpu_ids",
        "-1",
        "--epoch",
        str(epoch),
        "--preprocess",
        "none",
        "--num_test",
        "0",
        "--results_dir",
        results,
        "--n_styles",
        str(args.n_styles),
        "--seed",
        "0",
    ]
    done = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"test.py failed for {name} epoch {epoch}: {done.stderr.strip().splitlines()[-1:]}")
    images = os.path.join(results, name, f"test_{epoch}", "images")
    labels = sorted(d for d in os.listdir(images) if d.startswith("fake_B"))
    photos = sorted(make_dataset(os.path.join(args.dataroot, "testA")))
    return [[load_rgb(os.path.join(images, label, Path(p).stem + ".png")) for p in photos] for label in labels]


def score_outputs(outputs: list[np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Polarity (luminance correlation with the photo), SSIM and colour distance to the painted truth
    (``--single``: SSIM to the photo itself, colour distance to the painting)."""
    rs = [pearson(luminance(photo), luminance(y)) for y, (photo, _) in zip(outputs, pairs)]
    single = BASE is SINGLE_OPTIONS
    ssims = [ssim(y, photo if single else truth) for y, (photo, truth) in zip(outputs, pairs)]
    colours = [colour_distance(y, truth) for y, (_, truth) in zip(outputs, pairs)]
    return {
        "r_mean": float(np.mean(rs)),
        "r_min": float(np.min(rs)),
        "n_neg": int(sum(r < 0 for r in rs)),
        "n_images": len(rs),
        "ssim": float(np.mean(ssims)),
        "colour": float(np.mean(colours)),
    }


def score_run(
    args: argparse.Namespace, seed: int, epoch: int, extra: list[str], pairs: list[tuple[np.ndarray, np.ndarray]]
) -> dict | None:
    """Scores of one run's generator after ``epoch`` (None when that epoch was not saved)."""
    folder = os.path.join(args.out, run_name(args, seed))
    if option(extra, "--model") == "sinsc":
        if not os.path.isfile(os.path.join(folder, f"{epoch}_net_G.pth")):
            return None
        translator = Translator.load(folder, epoch=str(epoch))
        outputs = []
        for photo, _ in pairs:
            x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
            outputs.append(translator.translate(x, seed=0)[0].permute(1, 2, 0).double().numpy())
        return score_outputs(outputs, pairs)
    if option(extra, "--model") == "sc":
        path = os.path.join(folder, f"{epoch}_net_G.pth")
        return score_outputs(translate_sc(path, pairs, generator_spec(extra)), pairs) if os.path.isfile(path) else None
    if not os.path.isfile(os.path.join(folder, f"{epoch}_net_G_A.pth")):
        return None
    styles = translate_test_py(args, seed, epoch, extra)
    scores = score_outputs([y for outputs in styles for y in outputs], pairs * len(styles))
    if len(styles) > 1:
        scores["lpips"] = style_diversity(styles, args.vgg_weights or "imagenet")
    return scores


_LPIPS: dict = {}


def style_diversity(styles: list[list[np.ndarray]], weights: str) -> float:
    """Mean over the photos of the LPIPS between every two of its translations (``styles[k][photo]``)."""
    from evaluations.lpips import LPIPSVGG

    if weights not in _LPIPS:
        _LPIPS[weights] = LPIPSVGG(weights)
    values = []
    with torch.no_grad():
        for outputs in zip(*styles):
            batch = torch.from_numpy(np.stack(outputs)).permute(0, 3, 1, 2).float() * 2 - 1
            values.append(_LPIPS[weights].diversity(batch))
    return float(np.mean(values))


def read_rows(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: str, rows: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def summary(rows: list[dict], pairs: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """Markdown: the untranslated photos, then one line per (code, tag, epoch)."""
    single = BASE is SINGLE_OPTIONS  # SSIM to the photo itself, colour distance to the painting
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["code"], row["tag"], int(row["epoch"])), []).append(row)
    to = ("the photo", "the painting") if single else ("truth", "truth")
    lines = [
        f"| code | setting | epoch | runs keeping polarity | r_mean: mean (min) | SSIM to {to[0]}: mean ± sd "
        f"| colour distance to {to[1]} | LPIPS between styles |",
        "|---|---|---|---|---|---|---|---|",
        f"| untranslated photos | | | | +1.00 | {np.mean([ssim(p, p if single else t) for p, t in pairs]):.3f} "
        f"| {np.mean([colour_distance(p, t) for p, t in pairs]):.3f} | |",
    ]
    for (code, tag, epoch), group in sorted(groups.items()):
        r = np.array([float(g["r_mean"]) for g in group])
        s = np.array([float(g["ssim"]) for g in group])
        c = np.array([float(g.get("colour") or "nan") for g in group])
        d = np.array([float(g.get("lpips") or "nan") for g in group])
        diversity = "" if np.isnan(d).all() else f"{np.nanmean(d):.3f}"
        lines.append(
            f"| {code} | {tag} | {epoch} | {int((r > 0).sum())} of {len(r)} | {r.mean():+.2f} ({r.min():+.2f})"
            f" | {s.mean():.3f} ± {s.std(ddof=1) if len(s) > 1 else 0.0:.3f} | {c.mean():.3f} | {diversity} |"
        )
    return "\n".join(lines)


@torch.no_grad()
def loss_check(args: argparse.Namespace) -> str:
    """Markdown: what the spatially-correlative and the perceptual loss say of an inverted image.

    For each test photo, the FSeSim loss of the comparison's options (layers 4,7,9, cos, every position
    a query so nothing is sampled) and the relu3_3 L1 (``--lambda_perceptual``), between the photo and:
    its painted truth, the truth with its luminance inverted (RGB -> 1 - RGB), the photo inverted, and
    another test photo (a different scene). Means over the photos.
    """
    from models.losses import perceptual_loss
    from models.sesim import SpatialCorrelativeLoss, VGG16Features

    vgg = VGG16Features(layers=[4, 6, 7, 9], weights=args.vgg_weights or "imagenet")
    spatial = SpatialCorrelativeLoss("cos", patch_nums=-1, patch_size=64)
    pairs = test_pairs(args.dataroot)
    tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float() * 2 - 1  # noqa: E731
    cases = {
        "painted truth": lambda i: pairs[i][1],
        "painted truth, inverted": lambda i: 1 - pairs[i][1],
        "photo, inverted": lambda i: 1 - pairs[i][0],
        "another photo": lambda i: pairs[(i + 1) % len(pairs)][0],
    }
    lines = ["| photo compared with | spatially-correlative loss (FSeSim) | perceptual L1 (relu3_3) |", "|---|---|---|"]
    for label, image in cases.items():
        sp, pe = [], []
        for i, (photo, _) in enumerate(pairs):
            other = image(i)
            if other.shape != photo.shape:
                continue
            fa, fb = vgg(tensor(photo)), vgg(tensor(other))
            sp.append(float(spatial([fa[0], fa[2], fa[3]], [fb[0], fb[2], fb[3]])))
            pe.append(float(perceptual_loss(fa[1], fb[1])))
        lines.append(f"| {label} | {np.mean(sp):.3f} | {np.mean(pe):.3f} |")
    return "\n".join(lines)


def figure(
    args: argparse.Namespace, extra: list[str], tags: list[str], seeds: list[int], path: str, photos: int = 3
) -> None:
    """Grid: a row per test photo; photo, painted truth, then each tag's last-epoch output for each seed."""
    from PIL import Image

    pairs = test_pairs(args.dataroot)[:photos]
    columns = [[photo for photo, _ in pairs], [truth for _, truth in pairs]]
    for tag in tags:
        for seed in seeds:
            name = f"{args.code}_{tag}_s{seed}"
            files = sorted(Path(args.out, name).glob("[0-9]*_net_G.pth"), key=lambda f: int(f.name.split("_")[0]))
            if not files:
                raise UserError(f"--figure: no generator file in {Path(args.out, name)}")
            columns.append(translate_sc(str(files[-1]), pairs, generator_spec(extra)))
    rows = [np.concatenate([column[i] for column in columns], axis=1) for i in range(len(pairs))]
    grid = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(grid).save(path, quality=90)
    print(f"figure: {path} (columns: photo, truth, " + ", ".join(f"{t} s{s}" for t in tags for s in seeds) + ")")


def main() -> None:
    args, extra = parse_args(sys.argv[1:])
    if args.figure:
        path, tags, seeds = args.figure
        figure(args, extra, tags.split(","), parse_seeds(seeds), path)
        return
    if args.loss_check:
        print(loss_check(args))
        return
    seeds = parse_seeds(args.seeds)
    took = {} if args.score_only else train_all(args, seeds, extra)
    pairs = test_pairs(args.dataroot)
    new = []
    for seed in seeds:
        for epoch in range(1, last_epoch(extra) + 1):
            scores = score_run(args, seed, epoch, extra, pairs)
            if scores is not None:
                new.append(
                    {
                        "code": args.code,
                        "tag": args.tag,
                        "seed": seed,
                        "epoch": epoch,
                        "train_s": f"{took.get(seed, float('nan')):.0f}",
                        **scores,
                    }
                )
    csv_path = os.path.join(args.out, "runs.csv")
    os.makedirs(args.out, exist_ok=True)
    with open(csv_path + ".lock", "w") as lock:  # several calls may share one --out
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [
            r
            for r in read_rows(csv_path)
            if not (r["code"] == args.code and r["tag"] == args.tag and int(r["seed"]) in seeds)
        ]
        write_rows(csv_path, rows + new)
    print(summary(rows + new, pairs))


if __name__ == "__main__":
    run_cli(main)
