"""Precision, recall, density and coverage of generated features (Naeem et al., ICML 2020).

Each real sample gets a ball whose radius is the distance to its k-th nearest other real sample
(Euclidean, in feature space); likewise for generated samples. With R real and F generated samples:

- precision: share of generated samples inside at least one real ball;
- recall: share of real samples inside at least one generated ball;
- density: (1 / (k F)) * number of (real ball, generated sample) pairs with the sample inside;
- coverage: share of real balls that hold at least one generated sample.

"Inside" is a strict ``<``. The paper's setting is k = 5 for small sets; F-LSeSim reports k = 95.
"""

from __future__ import annotations

import numpy as np


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, D), (m, D) -> (n, m) Euclidean distances (float64, never negative)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    squared = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.maximum(squared, 0.0))


def kth_neighbour_radii(features: np.ndarray, k: int) -> np.ndarray:
    """(N, D) -> (N,) distance of each sample to its k-th nearest other sample (needs N > k)."""
    if not 1 <= k < features.shape[0]:
        raise ValueError(
            f"k = {k} nearest neighbours need more than k samples and k >= 1; got {features.shape[0]} samples"
        )
    distances = pairwise_distances(features, features)
    # Column 0 of the sorted row is the sample itself (distance 0), so the k-th neighbour is at k.
    return np.partition(distances, k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of (F, D) generated vs (R, D) real features."""
    real_radii = kth_neighbour_radii(real, k)  # (R,)
    fake_radii = kth_neighbour_radii(fake, k)  # (F,)
    distances = pairwise_distances(real, fake)  # (R, F)
    inside_real = distances < real_radii[:, None]  # generated j inside real ball i
    inside_fake = distances < fake_radii[None, :]  # real i inside generated ball j
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float(inside_fake.any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * fake.shape[0])),
        "coverage": float((distances.min(axis=1) < real_radii).mean()),
    }
