"""Frechet distance between Gaussians fitted to feature sets (FID when the features are Inception's).

The maths is pytorch-fid's (``calculate_frechet_distance``): mean and unbiased covariance in
float64; ``d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))`` with scipy's matrix square root;
when that square root is not finite, ``eps`` is added to both diagonals and it is retried; a
numerically imaginary part is dropped when the diagonal's is below 1e-3, else it is an error.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features: (N, D) with N >= 2 -> (mean (D,), unbiased covariance (D, D)), both float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature_statistics needs (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Squared Frechet distance of N(mu1, sigma1) and N(mu2, sigma2).

    mu: (D,) means; sigma: (D, D) covariances. Returns a float >= 0 up to rounding.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"mismatched statistics: means {mu1.shape} vs {mu2.shape}, covariances {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Fewer samples than dimensions make the product singular; pytorch-fid silences this too.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        # A nearly singular product (few samples, many dimensions): regularise as pytorch-fid does.
        warnings.warn(f"Frechet distance: singular covariance product; adding {eps} to the diagonals", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"Frechet distance: imaginary component {np.max(np.abs(covmean.imag)):.3g} in the matrix square root"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance of two (N, D) feature sets (FID when they are Inception pool3 features)."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
