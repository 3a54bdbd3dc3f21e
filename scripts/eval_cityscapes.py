"""Cityscapes label -> photo: segment the generated photos and score them against the labels.

    python scripts/eval_cityscapes.py --results_dir results/cityscapes_fsesim/val_latest/images/fake_B \
        --gtFine_dir ./gtFine/val --seg_net drn_d_22 --seg_weights ./drn_d_22_cityscapes.pth

A DRN-D segmentation network (``--seg_net`` drn_d_22, drn_d_38, drn_d_54 or drn_d_105; the paper
used DRN-D-105) labels every generated photo ``<city>_<seq>_<frame>.png``; the labels are compared
with the ground truth of the same frame and the script prints per-pixel accuracy, per-class
accuracy and mean IoU over Cityscapes' 19 train classes (evaluations/segmentation.py), and writes
them, with per-class IoUs, to ``--output`` (JSON).

Ground truth, either
- ``--gtFine_dir``: the official ``gtFine/val`` tree (``*_gtFine_labelIds.png``, found recursively;
  label ids mapped to train ids), or
- ``--aligned_dir``: the pix2pix-style set's ``val`` folder; the colour label map in the right half
  of each image is decoded by nearest class colour (approximate where JPEG blurred the edges).

Weights: the Cityscapes DRN models of the DRN authors, http://go.yf.io/drn-cityscapes-models
(e.g. ``drn_d_22_cityscapes.pth``); a plain state_dict, a ``{'state_dict': ...}`` training checkpoint
or a DataParallel save all load. Photos are scored at their own size, or at ``--eval_size H W``
(bilinear for photos, nearest for labels); labels are resized to the photos' size. Report the size
you used: segmentation networks trained at full resolution score low-resolution photos lower.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from evaluations.drn import DRN_CONFIGS, load_drn
from evaluations.features import list_images, load_rgb
from evaluations.segmentation import (
    CLASS_NAMES,
    confusion_of_pairs,
    read_train_ids,
    resize_labels,
    segmentation_scores,
)
from options.base_options import parse_gpu_ids
from util.errors import UserError, run_cli

LABEL_SUFFIX = "_gtFine_labelIds.png"


def ground_truth(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    """frame name -> label file, and the label kind for read_train_ids."""
    if bool(args.gtFine_dir) == bool(args.aligned_dir):
        raise UserError("give exactly one of --gtFine_dir and --aligned_dir")
    if args.gtFine_dir:
        if not os.path.isdir(args.gtFine_dir):
            raise UserError(f"--gtFine_dir {args.gtFine_dir} does not exist")
        found = {
            name[: -len(LABEL_SUFFIX)]: os.path.join(root, name)
            for root, _, names in os.walk(args.gtFine_dir)
            for name in names
            if name.endswith(LABEL_SUFFIX)
        }
        return found, "label_ids"
    return {Path(p).stem: p for p in list_images(args.aligned_dir, "--aligned_dir")}, "aligned"


def pairs(
    names: list[str], photos: dict[str, str], labels: dict[str, str], kind: str, size: list[int] | None
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """(photo (3, H, W) in [0, 1], train ids (H, W)) for each frame, at ``size`` (H, W) if given."""
    for name in tqdm(names, desc="segment", unit="image"):
        photo = load_rgb(photos[name])
        if size is not None:
            photo = F.interpolate(photo[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
        yield photo, resize_labels(read_train_ids(labels[name], kind), photo.shape[1], photo.shape[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", required=True, help="generated photos (test.py's images/fake_B)")
    parser.add_argument("--gtFine_dir", default=None, help="the official gtFine/val folder")
    parser.add_argument("--aligned_dir", default=None, help="the aligned photo|label val folder instead")
    parser.add_argument("--seg_net", default="drn_d_22", choices=sorted(DRN_CONFIGS), help="segmentation network")
    parser.add_argument("--seg_weights", required=True, help="its Cityscapes weights (.pth)")
    parser.add_argument(
        "--eval_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="resize photos (and labels) to H x W first",
    )
    parser.add_argument("--gpu_ids", default=None, help="e.g. 0; -1 for the CPU")
    parser.add_argument("--output", default=None, help="JSON file (default <results_dir>/segmentation_scores.json)")
    args = parser.parse_args()
    gpu_ids = parse_gpu_ids(args.gpu_ids)
    device = torch.device(f"cuda:{gpu_ids[0]}" if gpu_ids else "cpu")
    labels, kind = ground_truth(args)
    photos = {Path(p).stem: p for p in list_images(args.results_dir, "--results_dir")}
    names = sorted(photos.keys() & labels.keys())
    if not names:
        raise UserError(
            f"no photo in {args.results_dir} has a label of the same frame name "
            f"in {args.gtFine_dir or args.aligned_dir}"
        )
    net = load_drn(args.seg_net, args.seg_weights).to(device)
    hist = confusion_of_pairs(pairs(names, photos, labels, kind, args.eval_size), net, device)
    scores = segmentation_scores(hist)
    scores.update(
        images=len(names),
        seg_net=args.seg_net,
        seg_weights=os.path.abspath(args.seg_weights),
        eval_size=args.eval_size,
        classes=list(CLASS_NAMES),
        confusion=hist.tolist(),
    )
    output = args.output or os.path.join(args.results_dir, "segmentation_scores.json")
    with open(output, "w") as f:
        json.dump(scores, f, indent=1)
    print(
        f"{len(names)} images, {args.seg_net}: per-pixel accuracy {scores['pixel_accuracy']:.4f}, "
        f"per-class accuracy {scores['class_accuracy']:.4f}, mean IoU {scores['mean_iou']:.4f}"
    )
    print(f"scores: {output}")


if __name__ == "__main__":
    run_cli(main)
