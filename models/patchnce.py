"""PatchNCE, the contrastive loss of CUT (Park, Efros, Zhang & Zhu, ECCV 2020), and its projection heads.

This file is self-contained (it imports torch only) so it can be copied into other projects::

    head = PatchSampleMLP(in_channels=[3, 128, 256, 256, 256])      # one MLP per encoder layer
    ids = head.sample_ids(feats_k, num_patches=256)                 # the same ids for both images
    loss = patch_nce(head(feats_q, ids), head(feats_k, ids), temperature=0.07)

For every sampled location of the translation's encoder features (the query) the loss asks the
feature of the source at the same location (the positive) to be more similar than the source's
features at the other sampled locations of the same image (the negatives): a (1 + P)-way
classification with the positive at index 0. As in the published code the keys are detached, the
negatives' diagonal (query i against key i, already the positive) is filled with -10 before the
temperature, and the features are L2-normalised with an epsilon of 1e-7 added to the norm.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "PatchSampleMLP",
    "sample_patch_ids",
    "gather_patches",
    "l2_normalize",
    "patch_nce_logits",
    "patch_nce_loss",
    "patch_nce",
]

# The published code fills the negatives' diagonal with this logit (before dividing by the
# temperature), so it weighs exp(-10 / T), next to nothing, in the softmax.
DIAGONAL_LOGIT = -10.0


def sample_patch_ids(num_positions: int, num_patches: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``min(num_patches, num_positions)`` distinct flat positions in random order; all, in order, for <= 0.

    Drawn on the CPU (from ``generator``, or torch's global generator). Returns a LongTensor (P,).
    """
    if num_patches <= 0:
        return torch.arange(num_positions)
    return torch.randperm(num_positions, generator=generator)[:num_patches]


def gather_patches(feat: torch.Tensor, patch_ids: torch.Tensor) -> torch.Tensor:
    """feat: (B, C, H, W), patch_ids: (P,) flat positions (row * W + col) -> (B, P, C) features."""
    return feat.flatten(2)[:, :, patch_ids.to(feat.device)].transpose(1, 2)


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (||x||_2 + eps) over the last dimension (the published code's ``Normalize``)."""
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


def patch_nce_logits(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """query, key: (B, P, D) patch features (key detached) -> (B, P, 1 + P) logits / temperature.

    Column 0 is the positive <q_i, k_i>; column 1 + j the negative <q_i, k_j> of the same image,
    with j = i filled with -10.
    """
    key = key.detach()
    positive = (query * key).sum(dim=-1, keepdim=True)  # (B, P, 1)
    negatives = torch.bmm(query, key.transpose(1, 2))  # (B, P, P)
    diagonal = torch.eye(query.shape[1], dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(diagonal, DIAGONAL_LOGIT)
    return torch.cat([positive, negatives], dim=-1) / temperature


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Per-patch PatchNCE: (B, P, D) queries and keys -> (B, P) cross-entropies with target 0."""
    logits = patch_nce_logits(query, key, temperature)  # (B, P, 1 + P)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # the softmax in >= 32 bits
    target = torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.flatten(0, 1), target, reduction="none").view(logits.shape[:2])


def patch_nce(queries: Sequence[torch.Tensor], keys: Sequence[torch.Tensor], temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE averaged over patches, images and then layers: lists of (B, P_l, D) -> a scalar."""
    if len(queries) != len(keys) or not queries:
        raise ValueError(f"patch_nce needs equally long, non-empty lists, got {len(queries)} and {len(keys)}")
    losses = [patch_nce_loss(q, k, temperature).mean() for q, k in zip(queries, keys)]
    return torch.stack(losses).mean()


class PatchSampleMLP(nn.Module):
    """CUT's ``netF`` (``mlp_sample``): per layer, sampled patches -> 2-layer MLP -> L2 normalisation.

    Args:
        in_channels: channels of each encoder layer (e.g. ``ResnetGenerator.layer_channels``); one
            head ``mlp_<i>`` = Linear(C_i, num_features) -> ReLU -> Linear(num_features, num_features)
            per layer, built here (so published ``net_F`` files, keys ``mlp_<i>.{0,2}.{weight,bias}``,
            load, and the optimiser sees every parameter from the start).
        num_features: the heads' width (``--netF_nc``, 256).
        use_mlp: False gives CUT's ``sample`` variant: the patches are only normalised (no parameters).
    """

    def __init__(self, in_channels: Sequence[int], num_features: int = 256, use_mlp: bool = True) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("PatchSampleMLP needs the channel count of at least one layer")
        self.num_layers = len(in_channels)
        self.use_mlp = use_mlp
        if use_mlp:
            for i, channels in enumerate(in_channels):
                self.add_module(
                    f"mlp_{i}",
                    nn.Sequential(nn.Linear(channels, num_features), nn.ReLU(), nn.Linear(num_features, num_features)),
                )

    def sample_ids(
        self, feats: Sequence[torch.Tensor], num_patches: int, generator: Optional[torch.Generator] = None
    ) -> list[torch.Tensor]:
        """One (P_l,) LongTensor of flat positions per (B, C_l, H_l, W_l) map (shared by the batch)."""
        return [sample_patch_ids(f.shape[2] * f.shape[3], num_patches, generator) for f in feats]

    def forward(self, feats: Sequence[torch.Tensor], patch_ids: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """feats: one (B, C_l, H_l, W_l) map per layer; patch_ids: one (P_l,) per layer.

        Returns one (B, P_l, D) tensor per layer of unit-length projected patch features (D is
        num_features, or C_l without the MLP).
        """
        if len(feats) != self.num_layers or len(patch_ids) != self.num_layers:
            raise ValueError(
                f"netF has {self.num_layers} layers but got {len(feats)} maps and {len(patch_ids)} id sets"
            )
        out = []
        for i, (feat, ids) in enumerate(zip(feats, patch_ids)):
            patches = gather_patches(feat, ids)  # (B, P, C)
            if self.use_mlp:
                patches = getattr(self, f"mlp_{i}")(patches)  # (B, P, D)
            out.append(l2_normalize(patches))
        return out
