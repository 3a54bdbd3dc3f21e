"""Paired image scores for sets with ground truth: SSIM, PSNR, and a colour-appearance distance.

Images are float arrays (H, W, 3) or (H, W) in [0, 1]. SSIM follows Wang et al. 2004: an 11 x 11
Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, computed on luminance (ITU-R BT.601), the
mean over valid window positions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LUMA = np.array([0.299, 0.587, 0.114])


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) in [0, 1] -> (H, W) luma in [0, 1]."""
    return image if image.ndim == 2 else image[..., :3] @ LUMA


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """(size, size) normalised Gaussian."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def ssim(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of the luminance of two images of equal size (>= the window)."""
    x = torch.from_numpy(luminance(a).astype(np.float64))[None, None]
    y = torch.from_numpy(luminance(b).astype(np.float64))[None, None]
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of equal size, got {tuple(x.shape)} and {tuple(y.shape)}")
    w = torch.from_numpy(gaussian_window(size, sigma))[None, None]
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx * mx
    syy = F.conv2d(y * y, w) - my * my
    sxy = F.conv2d(x * y, w) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def colour_histogram(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """The joint RGB histogram of an image in [0, 1] (uint8 images: their values / 256), ``bins`` levels a
    channel, normalised to sum 1: (bins ** 3,) float64."""
    image = np.asarray(image)[..., :3]
    scaled = image.astype(np.float64) * (bins / 256.0) if image.dtype == np.uint8 else image * bins
    q = np.clip(scaled.astype(int), 0, bins - 1).reshape(-1, 3)
    h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins**3).astype(np.float64)
    return h / h.sum()


def colour_distance(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    """Appearance gap: total-variation distance (0..1) of the two images' joint RGB histograms.

    Ignores where colours are, only which colours occur and how often, so it measures whether an
    output took the target's palette regardless of structure.
    """
    return 0.5 * float(np.abs(colour_histogram(a, bins) - colour_histogram(b, bins)).sum())
