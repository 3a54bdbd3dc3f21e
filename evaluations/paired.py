"""Paired scores for sets with ground truth: SSIM, PSNR and a VGG-feature distance.

``ssim`` and ``psnr`` are :mod:`util.metrics`' (luminance SSIM, Wang et al. 2004; PSNR in dB for
[0, 1] images). The VGG-feature distance is LPIPS's form without its learned weights: at relu1_2,
relu2_2, relu3_3 and relu4_3 of the frozen ImageNet VGG16, features are unit-normalised over
channels, the squared difference is summed over channels and averaged over space, and the layers
are averaged (0 = identical; larger = less alike).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evaluations.features import list_images
from models.sesim import VGG16Features
from util.errors import UserError
from util.metrics import psnr, ssim

__all__ = ["ssim", "psnr", "VGG_DISTANCE_LAYERS", "vgg_distance", "paired_scores"]

VGG_DISTANCE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def vgg_distance(a: torch.Tensor, b: torch.Tensor, vgg: VGG16Features) -> torch.Tensor:
    """a, b: (B, 3, H, W) images in [-1, 1] -> (B,) distances (see the module docstring).

    ``vgg`` is a :class:`VGG16Features` built with ``layers=VGG_DISTANCE_LAYERS`` (or any layers).
    """
    if a.shape != b.shape:
        raise ValueError(f"vgg_distance needs images of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    total = torch.zeros(a.shape[0], device=a.device)
    feats = vgg(torch.cat([a, b], dim=0))
    for feat in feats:
        fa, fb = F.normalize(feat, dim=1, eps=1e-10).chunk(2, dim=0)  # (B, C, h, w) each
        total = total + ((fa - fb) ** 2).sum(dim=1).mean(dim=(1, 2))
    return total / len(feats)


def _load(path: str, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.float64) / 255.0


def paired_scores(
    fake_dir: str, truth_dir: str, vgg: Optional[VGG16Features] = None, device: str | torch.device = "cpu"
) -> dict:
    """Per-image and mean SSIM, PSNR (and VGG distance when ``vgg`` is given) of every image in
    ``fake_dir`` against the image of the same file stem in ``truth_dir`` (resized to the truth's
    size, bicubic). Returns {"images": {stem: {...}}, "mean": {...}, "count": n}."""
    fakes = {Path(p).stem: p for p in list_images(fake_dir, "fake folder")}
    truths = {Path(p).stem: p for p in list_images(truth_dir, "ground-truth folder")}
    names = sorted(fakes.keys() & truths.keys())
    if not names:
        raise UserError(f"no image in {fake_dir} has a ground truth of the same name in {truth_dir}")
    rows = {}
    for name in names:
        truth = _load(truths[name])
        fake = _load(fakes[name], (truth.shape[1], truth.shape[0]))
        row = {"ssim": ssim(fake, truth), "psnr": psnr(fake, truth)}
        if vgg is not None:
            pair = [torch.from_numpy(x).permute(2, 0, 1)[None].float().to(device) * 2 - 1 for x in (fake, truth)]
            with torch.no_grad():
                row["vgg_distance"] = float(vgg_distance(pair[0], pair[1], vgg)[0])
        rows[name] = row
    means = {key: float(np.mean([r[key] for r in rows.values()])) for key in rows[names[0]]}
    return {
        "images": rows,
        "mean": means,
        "count": len(rows),
        "folders": [os.path.abspath(fake_dir), os.path.abspath(truth_dir)],
    }
