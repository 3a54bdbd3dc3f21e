"""Realism scores of generated features against real ones, and of two image folders.

``realism_scores`` gathers FID, KID and precision/recall/density/coverage on one pair of feature
sets; ``score_folders`` reads two folders with a feature network (the real one through the cache).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from evaluations.features import cached_folder_features, compute_features, list_images
from evaluations.fid import fid_from_features
from evaluations.kid import kernel_inception_distance
from evaluations.prdc import prdc
from util.errors import UserError


def check_counts(real: int, fake: int, prdc_k: int) -> None:
    """UserError (one line, naming the option) when ``real`` real and ``fake`` generated images are too few for
    the scores: at least 2 of each, and more than ``prdc_k`` of each for density and coverage. Callers check the
    counts they will have before translating anything."""
    if min(real, fake) < 2:
        raise UserError(f"realism scores need at least 2 real and 2 generated images, got {real} and {fake}")
    if prdc_k > 0 and min(real, fake) <= prdc_k:
        raise UserError(
            f"--prdc_k {prdc_k}: density and coverage need more than {prdc_k} real and generated "
            f"images (got {real} and {fake}); lower it, or 0 to skip them"
        )


def realism_scores(
    real: np.ndarray,
    fake: np.ndarray,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    prdc_k: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """fid, kid, kid_std and (when ``prdc_k`` > 0) precision, recall, density, coverage.

    real: (N, D), fake: (M, D) features. Too few samples for a score is a UserError naming the
    option that asks for it.
    """
    check_counts(len(real), len(fake), prdc_k)
    kid, kid_std = kernel_inception_distance(
        real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    scores = {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std}
    if prdc_k > 0:
        scores.update(prdc(real, fake, k=prdc_k))
    return scores


def score_folders(
    real_dir: str,
    fake_dir: str,
    extractor: nn.Module,
    cache_dir: Optional[str] = None,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    **options: int,
) -> dict[str, float]:
    """:func:`realism_scores` of every image in ``fake_dir`` against every image in ``real_dir``.

    With ``cache_dir`` the real features are cached by folder content; ``options`` go to
    :func:`realism_scores` (kid_subsets, kid_subset_size, prdc_k, seed).
    """
    if cache_dir is None:
        real = compute_features(list_images(real_dir, "real folder"), extractor, batch_size, device)
    else:
        real = cached_folder_features(real_dir, extractor, cache_dir, batch_size, device, "real folder")
    fake = compute_features(list_images(fake_dir, "generated folder"), extractor, batch_size, device)
    return realism_scores(real, fake, **options)
