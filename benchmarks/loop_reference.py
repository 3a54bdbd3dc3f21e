"""A slow re-implementation of the spatially-correlative loss the way the published F-LSeSim code runs it.

Only for benchmarks/bench_loss.py: it computes the same values as ``models.sesim.SpatialCorrelativeLoss``
for the same query ids, but with the published code's costly structure:

- every map (source, target, other) goes through its head and its similarity computation separately;
- local keys: a Python loop over the queries cuts each query's p x p window out of the feature map,
  the windows are stacked into a (B, Nq, C, p, p) copy and multiplied with the queries in one batch;
- the top-quarter threshold of the generator-step mask comes from sorting every whole row
  (descending, entry Nk // 4) instead of a k-th value.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _prepare(feat: torch.Tensor, use_norm: bool) -> torch.Tensor:
    """(B, C, H, W) -> centred over space, then unit channel norm or divided by sqrt(C)."""
    feat = feat - feat.mean(dim=(2, 3), keepdim=True)
    return F.normalize(feat, dim=1) if use_norm else feat / math.sqrt(feat.shape[1])


def _window_keys(feat: torch.Tensor, query_ids: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut each query's clamped p x p window in a Python loop; returns (B, Nq, C, p*p)."""
    _, _, height, width = feat.shape
    windows = []
    for idx in query_ids.tolist():
        row, col = idx // width, idx % width
        top = min(max(row - patch_size // 2, 0), height - patch_size)
        left = min(max(col - patch_size // 2, 0), width - patch_size)
        windows.append(feat[:, :, top : top + patch_size, left : left + patch_size])
    return torch.stack(windows, dim=1).flatten(3)  # (B, Nq, C, p*p)


def loop_similarity(feat: torch.Tensor, query_ids: torch.Tensor, patch_size: int, use_norm: bool) -> torch.Tensor:
    """Similarity map of one image batch, (B, C, H, W) -> (B, Nq, Nk), published-code style."""
    b, c, h, w = feat.shape
    feat = _prepare(feat, use_norm)
    query_ids = query_ids.to(feat.device)
    queries = feat.flatten(2)[:, :, query_ids].transpose(1, 2)  # (B, Nq, C)
    if patch_size < h and patch_size < w:
        keys = _window_keys(feat, query_ids, patch_size)  # (B, Nq, C, p*p)
        num_queries = queries.shape[1]
        sim = torch.bmm(queries.reshape(b * num_queries, 1, c), keys.reshape(b * num_queries, c, -1)).view(
            b, num_queries, -1
        )
    else:
        sim = torch.bmm(queries, feat.flatten(2))  # (B, Nq, HW)
    return sim if use_norm else torch.tanh(sim / 10.0)


def _sorted_mask_loss(sim_src: torch.Tensor, sim_tgt: torch.Tensor, mode: str, use_norm: bool) -> torch.Tensor:
    """Generator-step comparison with the threshold taken from a full descending sort of each row."""
    num_keys = sim_tgt.shape[-1]
    quarter = num_keys // 4
    ordered = torch.sort(sim_tgt, dim=-1, descending=True).values
    threshold = ordered[:, :, quarter : quarter + 1]  # (B, Nq, 1)
    dropped = sim_tgt < threshold
    src = torch.where(dropped, torch.zeros_like(sim_src), sim_src)
    tgt = torch.where(dropped, torch.zeros_like(sim_tgt), sim_tgt)
    criterion = F.l1_loss if use_norm else F.smooth_l1_loss
    if mode == "cos":
        cosine = F.cosine_similarity(src, tgt, dim=-1)  # (B, Nq)
        return criterion(torch.ones_like(cosine), cosine)
    scale = num_keys / max(quarter, 1)
    return criterion(scale * src, scale * tgt)


def _contrastive_loss(
    sim_src: torch.Tensor, sim_tgt: torch.Tensor, sim_oth: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE over rows: positives <src_i, tgt_i>, negatives against the other image's rows."""
    src, tgt, oth = (F.normalize(s, dim=-1) for s in (sim_src, sim_tgt, sim_oth))
    num_queries = src.shape[1]
    positives = torch.bmm(src, tgt.transpose(1, 2)).reshape(-1, num_queries)
    negatives_src = torch.bmm(src, oth.transpose(1, 2)).reshape(-1, num_queries)
    negatives_tgt = torch.bmm(tgt, oth.transpose(1, 2)).reshape(-1, num_queries)
    logits = torch.cat([positives, negatives_src, negatives_tgt], dim=-1) / temperature
    target = torch.arange(logits.shape[0], device=logits.device) % num_queries
    return F.cross_entropy(logits, target)


def loop_loss(
    src_feats: Sequence[torch.Tensor],
    tgt_feats: Sequence[torch.Tensor],
    other_feats: Optional[Sequence[torch.Tensor]],
    patch_ids: Sequence[torch.Tensor],
    *,
    mode: str = "cos",
    patch_size: int = 64,
    use_norm: bool = False,
    heads: Optional[Sequence[nn.Module]] = None,
    T: float = 0.07,
) -> torch.Tensor:
    """The spatially-correlative loss, averaged over layers, computed the slow published way.

    src_feats / tgt_feats / other_feats: one (B, C_l, H_l, W_l) map per layer; ``other_feats`` given
    means the contrastive (head-training) form, which ``mode='info'`` requires. patch_ids: one LongTensor of
    flat query positions per layer (row = idx // W, col = idx % W). heads: the loss module's 1x1 heads
    (``SpatialCorrelativeLoss.heads()``) or None for FSeSim. Returns a scalar.
    """
    if mode == "info" and other_feats is None:
        raise ValueError("mode 'info' is contrastive and needs other_feats")
    total = 0.0
    for layer, (src, tgt) in enumerate(zip(src_feats, tgt_feats)):
        maps = [src, tgt] if other_feats is None else [src, tgt, other_feats[layer]]
        if heads:
            maps = [heads[layer](m) for m in maps]
        sims = [loop_similarity(m, patch_ids[layer], patch_size, use_norm) for m in maps]
        if other_feats is None:
            total = total + _sorted_mask_loss(sims[0], sims[1], mode, use_norm)
        else:
            total = total + _contrastive_loss(*sims, T)
    return total / len(src_feats)
