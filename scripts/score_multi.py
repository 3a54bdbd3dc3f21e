"""Score multi-modal translations: diversity (LPIPS between the outputs of one input) and structure.

    python scripts/score_multi.py --results results/demo_multistyle/test_latest [--figure docs/mmsc_demo.jpg]

Reads test.py's page of an ``mmsc`` run: ``images/real_A/<name>.png`` and its K translations
``images/fake_B_<k>/<name>.png``. For each input it computes

- diversity: the mean LPIPS over the K (K - 1) / 2 pairs of its outputs (evaluations/lpips.py; the
  backbone's VGG16 weights are said in the output, scores are not comparable with published LPIPS
  unless they are torchvision's). A deterministic model scores 0;
- structure: the mean SSIM of each output's luminance to the input's (util/metrics.py). A
  translation that keeps the scene scores high, one that repaints it scores low.

With ``--reference DIR`` the same two scores are computed for the images ``DIR/<input name>_*`` of
each input (the demo's testB holds every test photo painted in each of its styles by the network
that made the training paintings: the yardstick of a translation that keeps the structure).
Writes ``multi_scores.json`` beside the results and, with ``--figure``, a grid: one row per input,
columns input | output 1 ... K (| the style images of an example-guided page).
"""

from __future__ import annotations

import argparse
import json
import os
import re

import numpy as np
import torch
from PIL import Image

from evaluations.lpips import LPIPSVGG, load_images
from models import model_classes
from util.errors import UserError, run_cli
from util.metrics import ssim


def output_number(folder: str) -> int | None:
    """``k`` when ``folder`` is the k-th output of a multi-output model, as the model classes name them
    (their ``numbered_output``: ``fake_B_<k>``), else None."""
    numbers = {cls.output_number(folder) for cls in model_classes().values() if cls.multi_output}
    numbers.discard(None)
    return numbers.pop() if numbers else None


def output_folders(images: str) -> list[str]:
    """The ``fake_B_<k>`` folders of a results page, in k order."""
    found = [d for d in os.listdir(images) if output_number(d) is not None] if os.path.isdir(images) else []
    if len(found) < 2:
        raise UserError(
            f"--results: {images} holds {len(found)} fake_B_<k> folders; test an mmsc run with --n_styles 2 or more"
        )
    return sorted(found, key=output_number)


def to01(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1]."""
    return ((image.permute(1, 2, 0).numpy().astype(np.float64) + 1) / 2).clip(0, 1)


def reference_groups(reference: str, names: list[str]) -> dict[str, list[str]]:
    """For each input ``<stem>.png``, the images ``<reference>/<stem>_*`` (e.g. its paintings in several
    styles, ``home_0_s08.jpg``), sorted; inputs with fewer than two are left out."""
    files = sorted(os.listdir(reference)) if os.path.isdir(reference) else []
    groups = {}
    for name in names:
        stem = os.path.splitext(name)[0]
        found = [os.path.join(reference, f) for f in files if f.startswith(stem + "_")]
        if len(found) >= 2:
            groups[name] = found
    if not groups:
        raise UserError(f"--reference: {reference} holds no two or more images <input name>_* for any input")
    return groups


def scores_of(groups: dict[str, list[str]], images: str, lpips: LPIPSVGG) -> dict:
    """Diversity and structure (against ``images/real_A/<name>``) of each input's group of outputs."""
    rows = {}
    for name, paths in groups.items():
        source = load_images([os.path.join(images, "real_A", name)])
        outputs = load_images(paths)
        if outputs.shape[2:] != source.shape[2:]:
            outputs = torch.nn.functional.interpolate(
                outputs, size=source.shape[2:], mode="bicubic", align_corners=False
            ).clamp(-1, 1)
        rows[os.path.splitext(name)[0]] = {
            "lpips_diversity": lpips.diversity(outputs),
            "ssim_structure": float(np.mean([ssim(to01(out), to01(source[0])) for out in outputs])),
        }
    means = {key: float(np.mean([r[key] for r in rows.values()])) for key in ("lpips_diversity", "ssim_structure")}
    return {"images": rows, "mean": means, "count": len(rows)}


def score(results: str, lpips: LPIPSVGG, reference: str | None = None) -> dict:
    """Per-input and mean diversity and structure of a results page (and of ``reference``)."""
    images = os.path.join(results, "images")
    folders = output_folders(images)
    names = sorted(os.listdir(os.path.join(images, "real_A"))) if os.path.isdir(os.path.join(images, "real_A")) else []
    if not names:
        raise UserError(f"--results: no image in {images}/real_A")
    groups = {name: [os.path.join(images, d, name) for d in folders] for name in names}
    scores = {**scores_of(groups, images, lpips), "styles": len(folders), "lpips": lpips.note}
    if reference:
        scores["reference"] = {"dir": reference, **scores_of(reference_groups(reference, names), images, lpips)}
    return scores


def figure(results: str, path: str, count: int, size: int = 96) -> None:
    """Rows of inputs, columns input | each output [| each style image]; a white gap after the input."""
    images = os.path.join(results, "images")
    styles = sorted(
        (d for d in os.listdir(images) if re.fullmatch(r"style_B_\d+", d)), key=lambda d: int(d.rsplit("_", 1)[1])
    )
    columns = ["real_A"] + output_folders(images) + styles
    names = sorted(os.listdir(os.path.join(images, "real_A")))[:count]
    grid = Image.new("RGB", (len(columns) * (size + 4) + 8, len(names) * (size + 4)), "white")
    for row, name in enumerate(names):
        for col, folder in enumerate(columns):
            tile = Image.open(os.path.join(images, folder, name)).convert("RGB")
            grid.paste(
                tile.resize((size, size), Image.Resampling.BICUBIC),
                (col * (size + 4) + (8 if col else 0), row * (size + 4)),
            )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    grid.save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="results/<name>/<phase>_<epoch> of an mmsc run")
    parser.add_argument("--lpips_weights", default="imagenet", help="VGG16 of LPIPS, as --vgg_weights")
    parser.add_argument("--figure", default=None, help="also write an input | outputs grid here")
    parser.add_argument("--rows", type=int, default=5, help="inputs in the figure")
    parser.add_argument(
        "--reference",
        default=None,
        help="also score a folder of <input name>_* images per input (e.g. the demo's testB: each "
        "test photo painted in every style), as a yardstick",
    )
    args = parser.parse_args()
    lpips = LPIPSVGG(args.lpips_weights)
    scores = score(args.results, lpips, args.reference)
    print(f"{scores['count']} inputs x {scores['styles']} outputs ({scores['lpips']})")
    rows = [("translations", scores)] + (
        [(f"reference ({args.reference})", scores["reference"])] if args.reference else []
    )
    width = max(len(label) for label, _ in rows) + 2
    print(f"{'':{width}}{'LPIPS diversity ^':>20}{'structure SSIM ^':>20}")
    for label, row in rows:
        print(f"{label:{width}}{row['mean']['lpips_diversity']:>20.4f}{row['mean']['ssim_structure']:>20.4f}")
    print(
        "diversity: mean LPIPS over the pairs of one input's outputs; structure: mean SSIM of each output's "
        "luminance to its input's"
    )
    with open(os.path.join(args.results, "multi_scores.json"), "w") as f:
        json.dump(scores, f, indent=1)
    if args.figure:
        figure(args.results, args.figure, args.rows)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    run_cli(main)
