"""Seconds per training step of train.py at several commits, measured side by side in one run.

    python benchmarks/bench_commits.py 364b69c main                       # FSeSim and LSeSim, best of 2
    python benchmarks/bench_commits.py 364b69c 0f74f7d main --modes fsesim --repeats 3
    python benchmarks/bench_commits.py e66152d main --modes fsesim lsesim cut cycle_gan mmsc sinsc

Each commit is checked out into a temporary git worktree (the current virtual environment runs it), and
train.py runs there on the same random 286² images (crop 256, batch 1, ``--vgg_weights random``, 2 threads)
for 2 and for 7 iterations; a step's time is (wall of 7 - wall of 2) / 5, so start-up, data loading and the
final save cancel. Commits are run in turn, round after round, so a change of the machine's load reaches
them all alike; the best of ``--repeats`` rounds is printed, as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SC = ["--model", "sc", "--vgg_weights", "random"]
# Each model as the suite's figures take it; sinsc (one image to a side in its own data) on the unaligned data's
# first images at 128² (its StyleGAN2 networks at 256² make a step of a minute on 2 cores).
MODES = {
    "fsesim": SC,
    "lsesim": SC + ["--learned_attn", "--augment", "--patch_size", "32"],
    "cut": ["--model", "cut"],
    "cycle_gan": ["--model", "cycle_gan"],
    "mmsc": ["--model", "mmsc", "--vgg_weights", "random"],
    "sinsc": ["--model", "sinsc", "--vgg_weights", "random", "--dataset_mode", "unaligned"]
    + ["--load_size", "143", "--crop_size", "128", "--preprocess", "resize_and_crop"],
}
FLAGS = [
    "--gpu_ids",
    "-1",
    "--batch_size",
    "1",
    "--num_threads",
    "0",
    "--display_freq",
    "100000",
    "--print_freq",
    "100000",
    "--update_html_freq",
    "100000",
    "--no_html",
]


def write_data(root: str, count: int = 4, size: int = 286) -> None:
    """``count`` random ``size``² RGB images in each of trainA and trainB."""
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB"):
        os.makedirs(os.path.join(root, split))
        for i in range(count):
            Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(
                os.path.join(root, split, f"{i}.png")
            )


def wall(tree: str, data: str, ck: str, name: str, mode: str, iters: int, threads: int) -> float:
    """Wall seconds of one ``train.py --max_iters iters`` run in ``tree``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    argv = [
        sys.executable,
        "train.py",
        "--dataroot",
        data,
        "--checkpoints_dir",
        ck,
        "--name",
        name,
        "--max_iters",
        str(iters),
        *FLAGS,
        *MODES[mode],
    ]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"train.py failed in {tree}: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+", help="git revisions to compare (main, a hash, HEAD~3 ...)")
    parser.add_argument("--modes", nargs="+", default=["fsesim", "lsesim"], choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        data = os.path.join(base, "data")
        write_data(data)
        trees = {}
        for commit in args.commits:
            tree = os.path.join(base, f"tree_{len(trees)}")
            subprocess.run(["git", "worktree", "add", "--detach", "-q", tree, commit], cwd=REPO_ROOT, check=True)
            trees[commit] = tree
        best: dict[tuple[str, str], float] = {}
        try:
            for round_ in range(args.repeats):
                for mode in args.modes:
                    for commit, tree in trees.items():
                        ck = os.path.join(base, f"ck_{round_}")
                        name = f"{mode}_{list(trees).index(commit)}"
                        short = wall(tree, data, ck, name + "_2", mode, 2, args.threads)
                        long = wall(tree, data, ck, name + "_7", mode, 7, args.threads)
                        step = (long - short) / 5
                        best[commit, mode] = min(best.get((commit, mode), step), step)
                        print(f"round {round_ + 1} {mode} {commit}: {step:.3f} s/step", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=REPO_ROOT)
    print(f"\n| commit | {' | '.join(args.modes)} |\n|---|" + "---|" * len(args.modes))
    for commit in args.commits:
        print(f"| {commit} | " + " | ".join(f"{best[commit, m]:.3f}" for m in args.modes) + " |")


if __name__ == "__main__":
    main()
