"""Per-location error maps of a source image against a target: what each loss sees, and where.

All maps are (h, w) tensors whose mean is the corresponding loss:

- :func:`pixel_l1_map`: mean over channels of |source - target| (images in [-1, 1]);
- :func:`feature_l1_map`: the perceptual loss, mean over channels of |f_src - f_tgt| at one layer;
- :func:`cosine_distance_map`: 1 - cos(f_src, f_tgt) over channels at each location (PatchNCE's
  positive pair: the same location in both images);
- :func:`spatial_loss_map`: the spatially-correlative loss with every location as a query, each
  query's loss placed at its location; layers of coarser resolution are repeated (nearest) up to
  the finest one, and the layers are averaged, so the map's mean is the loss itself.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from models.sesim import SpatialCorrelativeLoss, masked_comparison, self_similarity


def pixel_l1_map(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """source, target: (1, C, H, W) in [-1, 1] -> (H, W) mean absolute difference over channels."""
    return (source - target).abs().mean(dim=1)[0]


def feature_l1_map(src_feat: torch.Tensor, tgt_feat: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) feature maps -> (h, w) mean absolute difference over channels."""
    return (src_feat - tgt_feat).abs().mean(dim=1)[0]


def cosine_distance_map(src_feat: torch.Tensor, tgt_feat: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) feature maps -> (h, w) cosine distance 1 - cos in [0, 2] per location."""
    return 1.0 - F.cosine_similarity(src_feat, tgt_feat, dim=1, eps=1e-8)[0]


def spatial_query_losses(
    src_feat: torch.Tensor, tgt_feat: torch.Tensor, mode: str = "cos", patch_size: int = 64, use_norm: bool = False
) -> torch.Tensor:
    """Generator-step loss of every query location of one layer: (1, C, h, w) maps -> (h, w).

    Exactly :func:`models.sesim.masked_comparison` applied to each query's row on its own, so
    the map's mean equals the loss with all h * w locations as queries.
    """
    _, _, h, w = src_feat.shape
    ids = torch.arange(h * w, device=src_feat.device)
    sims = self_similarity(torch.cat([src_feat, tgt_feat]), ids, patch_size, use_norm)  # (2, hw, Nk)

    def one_row(row_src: torch.Tensor, row_tgt: torch.Tensor) -> torch.Tensor:
        return masked_comparison(row_src[None, None], row_tgt[None, None], mode, use_norm)

    return torch.vmap(one_row)(sims[0], sims[1]).view(h, w)


def spatial_loss_map(
    src_feats: Sequence[torch.Tensor], tgt_feats: Sequence[torch.Tensor], loss: SpatialCorrelativeLoss
) -> torch.Tensor:
    """Per-location spatially-correlative loss over layers (FSeSim; no learned heads).

    src_feats / tgt_feats: one (1, C_l, h_l, w_l) map per layer, finest first or in any order;
    ``loss`` supplies mode, patch_size and use_norm. Returns (h, w) at the finest layer's size.
    """
    if loss.learned:
        raise ValueError("spatial_loss_map shows the fixed-feature (FSeSim) loss; learned heads are not supported")
    maps = [spatial_query_losses(s, t, loss.mode, loss.patch_size, loss.use_norm) for s, t in zip(src_feats, tgt_feats)]
    height = max(m.shape[0] for m in maps)
    width = max(m.shape[1] for m in maps)
    # Integer-factor nearest upsampling repeats values, so each layer's mean is unchanged.
    resized = [F.interpolate(m[None, None], size=(height, width), mode="nearest")[0, 0] for m in maps]
    return torch.stack(resized).mean(dim=0)
