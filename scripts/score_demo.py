"""Score translations against ground truth: structure (SSIM, PSNR) and appearance (colour distance).

    python scripts/score_demo.py --results results/demo_photo2painting/test_latest \
        --dataroot datasets/photo2painting [--figure docs/demo.png]

For every translated test photo ``images/fake_B/<name>.png`` it compares with the painted
ground truth ``<dataroot>/testB/<name>.*``, and, as the baseline, the untouched photo
``<dataroot>/testA/<name>.*`` with the same ground truth. A good translation keeps the photo's
structure (SSIM stays high) while taking the painting's appearance (colour distance falls).
Writes ``scores.json`` beside the results and, with ``--figure``, a photo | translation | truth grid.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from data.image_folder import make_dataset
from util.errors import UserError, run_cli
from util.metrics import colour_distance, psnr, ssim


def load(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float64) / 255.0


def by_stem(folder: str) -> dict[str, str]:
    if not os.path.isdir(folder):
        raise UserError(f"{folder} does not exist")
    return {Path(p).stem: p for p in make_dataset(folder)}


def score(results: str, dataroot: str) -> dict:
    """Per-image and mean scores of translation vs truth and photo vs truth."""
    fakes = by_stem(os.path.join(results, "images", "fake_B"))
    truths = by_stem(os.path.join(dataroot, "testB"))
    photos = by_stem(os.path.join(dataroot, "testA"))
    names = sorted(set(fakes) & set(truths) & set(photos))
    if not names:
        raise UserError(f"no translated image in {results}/images/fake_B has a ground truth in {dataroot}/testB")
    rows = {}
    for name in names:
        truth = load(truths[name])
        size = (truth.shape[1], truth.shape[0])
        fake, photo = load(fakes[name], size), load(photos[name], size)
        rows[name] = {
            "ssim_translation": ssim(fake, truth),
            "ssim_photo": ssim(photo, truth),
            "psnr_translation": psnr(fake, truth),
            "psnr_photo": psnr(photo, truth),
            "colour_translation": colour_distance(fake, truth),
            "colour_photo": colour_distance(photo, truth),
        }
    means = {key: float(np.mean([r[key] for r in rows.values()])) for key in next(iter(rows.values()))}
    return {"images": rows, "mean": means, "count": len(rows)}


def figure(results: str, dataroot: str, path: str, count: int = 4, size: int = 128) -> None:
    """A grid: one row per image, columns photo | translation | painted ground truth."""
    fakes = by_stem(os.path.join(results, "images", "fake_B"))
    truths, photos = by_stem(os.path.join(dataroot, "testB")), by_stem(os.path.join(dataroot, "testA"))
    names = sorted(set(fakes) & set(truths) & set(photos))[:count]
    grid = Image.new("RGB", (3 * size + 8, len(names) * (size + 4)), "white")
    for row, name in enumerate(names):
        for col, source in enumerate((photos, fakes, truths)):
            tile = Image.open(source[name]).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
            grid.paste(tile, (col * (size + 4), row * (size + 4)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    grid.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="results/<name>/<phase>_<epoch>")
    parser.add_argument("--dataroot", default="datasets/photo2painting", help="folder with testA and testB")
    parser.add_argument("--figure", default=None, help="also write a photo | translation | truth grid here")
    args = parser.parse_args()
    scores = score(args.results, args.dataroot)
    m = scores["mean"]
    print(f"{scores['count']} test images, compared with their painted ground truth (testB):")
    print(f"{'':24}{'SSIM (structure) ^':>20}{'PSNR dB ^':>12}{'colour distance v':>20}")
    print(f"{'input photo':24}{m['ssim_photo']:>20.3f}{m['psnr_photo']:>12.2f}{m['colour_photo']:>20.3f}")
    print(
        f"{'translation':24}{m['ssim_translation']:>20.3f}{m['psnr_translation']:>12.2f}"
        f"{m['colour_translation']:>20.3f}"
    )
    with open(os.path.join(args.results, "scores.json"), "w") as f:
        json.dump(scores, f, indent=1)
    if args.figure:
        figure(args.results, args.dataroot, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    run_cli(main)
