"""Images per second of the unaligned loader at 256², with and without --augment, against the step rate.

    python benchmarks/bench_loader.py [--device cpu|cuda] [--num_threads 0 2 4] [--images 64] [--epochs 3]
                                      [--step_config fp32] [--step_repeats 2] [--no_step]

Writes ``--images`` JPEGs per domain (256 x 256 as in horse2zebra, smooth colour fields plus
noise, quality 90) to a temporary ``trainA``/``trainB``, builds the loader as train.py does
(``--load_size 286 --crop_size 256``, batch 1, ``--num_threads`` worker processes, pinned memory
when ``--device cuda``) and times whole epochs after a first one that starts the persistent
workers: images/s is the median over ``--epochs``. It then times one training step of the model
that takes those batches (FSeSim without --augment, LSeSim with it; ``bench_step.py`` in a fresh
process, ``--step_config`` such as ``bf16+cl``) and says which side limits training. On a CPU the
workers and the step share the cores, so the two rates do not simply combine there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks import bench_step

SIZE, LOAD_SIZE = 256, 286


def write_images(folder: str, count: int, seed: int) -> None:
    """``count`` 256² JPEGs: a smooth random colour field plus pixel noise (JPEG cost like a photo's)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for i in range(count):
        freq = rng.uniform(1, 6, size=(3, 2))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        planes = [127 + 90 * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy) + p) for f, p in zip(freq, phase)]
        image = np.stack(planes, axis=-1) + rng.normal(0, 12, (SIZE, SIZE, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i}.jpg"), quality=90)


def loader_rate(root: str, *, augment: bool, num_threads: int, device: str, epochs: int) -> float:
    """Median images/s of whole epochs of the unaligned loader built through the train options."""
    from data import create_dataset
    from options.train_options import TrainOptions

    argv = [
        "--dataroot",
        root,
        "--model",
        "sc",
        "--gpu_ids",
        "0" if device == "cuda" else "-1",
        "--num_threads",
        str(num_threads),
        "--batch_size",
        "1",
        "--load_size",
        str(LOAD_SIZE),
        "--crop_size",
        str(SIZE),
    ]
    argv += ["--learned_attn", "--augment"] if augment else []
    loader = create_dataset(TrainOptions(argv).parse())
    seconds = []
    for epoch in range(1, epochs + 2):  # the first epoch starts the workers: not timed
        loader.set_epoch(epoch)
        start = time.perf_counter()
        count = sum(batch["A"].shape[0] for batch in loader)
        seconds.append(time.perf_counter() - start)
    return count / statistics.median(seconds[1:])


def step_rate(model: str, device: str, spec: str, repeats: int, threads: int | None) -> float | None:
    """Images/s of one training step (batch 1, 256²) of ``model`` in a fresh process; None if it failed."""
    amp, channels_last, compiled = bench_step.parse_config(spec)
    config = {
        "model": model,
        "size": SIZE,
        "batch": 1,
        "tiny": False,
        "device": device,
        "amp": amp,
        "channels_last": channels_last,
        "compile": compiled,
        "repeats": repeats,
        "count_flops": False,
    }
    result = bench_step._in_subprocess("step", config, threads)
    return 1.0 / result["s"] if "s" in result else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--num_threads", nargs="+", type=int, default=[0, 2, 4], help="loader worker processes")
    parser.add_argument("--images", type=int, default=64, help="images per domain")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median)")
    parser.add_argument("--step_config", default="fp32", help="the step's switches, e.g. fp32, bf16+cl")
    parser.add_argument("--step_repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the step's process")
    parser.add_argument("--no_step", action="store_true", help="time the loader only")
    args = parser.parse_args()
    bench_step.parse_config(args.step_config)
    with tempfile.TemporaryDirectory() as root:
        write_images(os.path.join(root, "trainA"), args.images, seed=0)
        write_images(os.path.join(root, "trainB"), args.images, seed=1)
        rows = []
        for augment, model in ((False, "fsesim"), (True, "lsesim")):
            steps = (
                None
                if args.no_step
                else step_rate(model, args.device, args.step_config, args.step_repeats, args.threads)
            )
            for num_threads in args.num_threads:
                rate = loader_rate(
                    root, augment=augment, num_threads=num_threads, device=args.device, epochs=args.epochs
                )
                rows.append((model, augment, num_threads, rate, steps))
                print(f"  augment={augment} num_threads={num_threads}: {rate:.1f} images/s", file=sys.stderr)
    print(
        f"Device: {args.device} ({os.cpu_count()} CPU cores); {args.images} images per domain, 256² JPEG, "
        f"--load_size {LOAD_SIZE} --crop_size {SIZE}, batch 1; step: {args.step_config}\n"
    )
    print("| --augment | --num_threads | loader images/s | step images/s (model) | limited by |")
    print("|---|---|---|---|---|")
    for model, augment, num_threads, rate, steps in rows:
        name = bench_step.NAMES[model]
        limit = "–" if steps is None else ("data" if rate < steps else f"compute (loader {rate / steps:.0f}× faster)")
        step_text = "–" if steps is None else f"{steps:.3g} ({name})"
        print(f"| {'on' if augment else 'off'} | {num_threads} | {rate:.1f} | {step_text} | {limit} |")


if __name__ == "__main__":
    main()
