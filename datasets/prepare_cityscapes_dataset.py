"""Make the pix2pix-style aligned Cityscapes set (photo | colour label map) from the official release.

    python datasets/prepare_cityscapes_dataset.py \\
        --gtFine_dir ./gtFine --leftImg8bit_dir ./leftImg8bit --output_dir ./datasets/cityscapes

Reads ``<leftImg8bit_dir>/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
``<gtFine_dir>/<split>/<city>/<city>_<seq>_<frame>_gtFine_color.png`` for each split (train and
val), resizes both to ``--size`` x ``--size`` and writes ``<output_dir>/<split>/<city>_<seq>_<frame>.jpg``:
the photo on the left half, the label map on the right (``--size`` high, 2 * ``--size`` wide).
Train label -> photo with ``--dataset_mode aligned --direction BtoA`` (scripts/train_cityscapes.sh).

The two archives (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip) need a free account at
https://www.cityscapes-dataset.com. Mistakes print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from PIL import Image
from tqdm import tqdm

PHOTO_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_color.png"


class PrepareError(Exception):
    """A one-line, user-fixable error (a missing folder, no image pairs, a bad option)."""


def list_images(split_dir: str, suffix: str) -> dict[str, str]:
    """Map ``<city>_<seq>_<frame>`` to the path of each ``*<suffix>`` file in ``split_dir/<city>/``."""
    found = {}
    for city in sorted(os.listdir(split_dir)):
        city_dir = os.path.join(split_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for file in os.listdir(city_dir):
            if file.endswith(suffix):
                found[file[: -len(suffix)]] = os.path.join(city_dir, file)
    return found


def find_pairs(photo_split_dir: str, label_split_dir: str) -> tuple[list[tuple[str, str, str]], int]:
    """Sorted ``(name, photo_path, label_path)`` for every frame with both files.

    Returns the pairs and how many frames had only one of the two files.
    """
    photos = list_images(photo_split_dir, PHOTO_SUFFIX)
    labels = list_images(label_split_dir, LABEL_SUFFIX)
    names = sorted(photos.keys() & labels.keys())
    unmatched = len(photos.keys() ^ labels.keys())
    return [(name, photos[name], labels[name]) for name in names], unmatched


def side_by_side(photo_path: str, label_path: str, size: int) -> Image.Image:
    """The RGB image (2 * size wide, size high): the resized photo left, the resized label map right.

    The photo is resampled bicubically; the label map by nearest neighbour, so it keeps only the
    exact class colours.
    """
    with Image.open(photo_path) as photo, Image.open(label_path) as label:
        left = photo.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        right = label.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
    combined = Image.new("RGB", (2 * size, size))
    combined.paste(left, (0, 0))
    combined.paste(right, (size, 0))
    return combined


def split_dirs(gtfine_dir: str, photo_dir: str, split: str) -> tuple[str, str]:
    """The ``<split>`` folders of both trees; PrepareError naming the option when one is missing."""
    photo_split = os.path.join(photo_dir, split)
    label_split = os.path.join(gtfine_dir, split)
    if not os.path.isdir(photo_split):
        raise PrepareError(
            f"--leftImg8bit_dir {photo_dir}: no '{split}' folder (expected {split}/<city>/*{PHOTO_SUFFIX})"
        )
    if not os.path.isdir(label_split):
        raise PrepareError(f"--gtFine_dir {gtfine_dir}: no '{split}' folder (expected {split}/<city>/*{LABEL_SUFFIX})")
    return photo_split, label_split


def prepare(
    gtfine_dir: str, photo_dir: str, output_dir: str, *, splits: list[str], size: int, extension: str
) -> dict[str, int]:
    """Write every split's side-by-side images; returns the number written per split.

    All splits are checked before anything is written, so a mistake leaves no half-made output.
    """
    for option, folder in (("--gtFine_dir", gtfine_dir), ("--leftImg8bit_dir", photo_dir)):
        if not os.path.isdir(folder):
            raise PrepareError(f"{option} {folder}: no such folder")
    jobs = {}
    for split in splits:
        pairs, unmatched = find_pairs(*split_dirs(gtfine_dir, photo_dir, split))
        if not pairs:
            raise PrepareError(
                f"no '{split}' pairs of *{PHOTO_SUFFIX} in {photo_dir}/{split}/<city>/ and "
                f"*{LABEL_SUFFIX} in {gtfine_dir}/{split}/<city>/"
            )
        if unmatched:
            print(f"{split}: skipping {unmatched} frame(s) that have a photo or a label map but not both")
        jobs[split] = pairs
    counts = {}
    for split, pairs in jobs.items():
        out_split = os.path.join(output_dir, split)
        os.makedirs(out_split, exist_ok=True)
        for name, photo_path, label_path in tqdm(pairs, desc=split, unit="image"):
            side_by_side(photo_path, label_path, size).save(os.path.join(out_split, f"{name}.{extension}"))
        counts[split] = len(pairs)
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--gtFine_dir", required=True, help="the gtFine folder (train/, val/ inside)")
    parser.add_argument("--leftImg8bit_dir", required=True, help="the leftImg8bit folder (train/, val/ inside)")
    parser.add_argument("--output_dir", required=True, help="where <split>/*.jpg go")
    parser.add_argument("--splits", default="train,val", help="comma-separated splits to convert")
    parser.add_argument("--size", type=int, default=256, help="side of each resized half")
    parser.add_argument(
        "--ext", default="jpg", choices=["jpg", "png"], help="output format (png keeps the label colours exact)"
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Run the conversion; returns the exit status (0, or 2 after printing a one-line error)."""
    opt = build_parser().parse_args(argv)
    splits = [s for s in opt.splits.replace(" ", "").split(",") if s]
    try:
        if opt.size < 1:
            raise PrepareError(f"--size {opt.size}: must be a positive number of pixels")
        if not splits:
            raise PrepareError(f"--splits '{opt.splits}': give at least one split, e.g. train,val")
        counts = prepare(
            opt.gtFine_dir, opt.leftImg8bit_dir, opt.output_dir, splits=splits, size=opt.size, extension=opt.ext
        )
    except PrepareError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    summary = ", ".join(f"{count} {split}" for split, count in counts.items())
    print(f"wrote {summary} images to {opt.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
