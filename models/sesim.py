"""The spatially-correlative loss (Zheng, Cham & Cai, CVPR 2021) and the frozen VGG16 it measures with.

This file is self-contained (it imports torch only) so it can be copied into other projects::

    vgg = VGG16Features(layers=(4, 7, 9), weights="imagenet")
    criterion = SpatialCorrelativeLoss(mode="cos", patch_nums=256, patch_size=64)
    with torch.no_grad():
        src_feats = vgg(real_A)             # images in [-1, 1], (B, 3, H, W)
    loss = criterion(src_feats, vgg(fake_B))

The loss compares the *self-similarity* of two images: for a set of query locations it builds the
similarity of each query to its keys (every location, or a local window) in the source and in the
target, and asks the two maps to agree. Appearance may change completely; structure may not.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "LAYER_NAMES",
    "VGG16Features",
    "VGGWeightsError",
    "load_vgg16_weights",
    "SpatialCorrelativeLoss",
    "sample_patch_ids",
    "window_key_ids",
    "self_similarity",
    "masked_comparison",
    "contrastive_comparison",
]

# The 13 ReLU outputs of VGG16 that `--attn_layers` index, and the torchvision
# `vgg16().features` index whose output each one is. Index 7 (relu4_1) is the post-ReLU value.
LAYER_NAMES = (
    "relu1_1",
    "relu1_2",
    "relu2_1",
    "relu2_2",
    "relu3_1",
    "relu3_2",
    "relu3_3",
    "relu4_1",
    "relu4_2",
    "relu4_3",
    "relu5_1",
    "relu5_2",
    "relu5_3",
)
_TAP_AFTER = (1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29)
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)

TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
TORCHVISION_FILE = "vgg16-397923af.pth"
CAFFE_FILE = "vgg16_caffe_imagenet.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_COMMAND = "python scripts/download_vgg16.py"


class VGGWeightsError(FileNotFoundError):
    """No usable VGG16 weights: the message says where they were looked for and how to get them."""


def _layer_index(layer: Union[int, str]) -> int:
    if isinstance(layer, str) and not layer.lstrip("-").isdigit():
        if layer not in LAYER_NAMES:
            raise ValueError(f"unknown VGG16 layer {layer!r}; choose from {', '.join(LAYER_NAMES)}")
        return LAYER_NAMES.index(layer)
    index = int(layer)
    if not 0 <= index < len(LAYER_NAMES):
        raise ValueError(f"VGG16 layer index {index} is outside 0-12 ({', '.join(LAYER_NAMES)})")
    return index


def _hub_checkpoint_dir() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def load_vgg16_weights(weights: str) -> tuple[dict, Sequence[float], Sequence[float], str]:
    """Resolve ``weights`` to (features state_dict, mean, std, description).

    A plain state_dict is torchvision's flavour (ImageNet mean/std); a dict with ``state_dict``,
    ``mean`` and ``std`` records its own preprocessing (e.g. Caffe-trained weights).
    """
    if weights == "imagenet":
        hub = _hub_checkpoint_dir()
        path = os.path.join(hub, TORCHVISION_FILE)
        if not os.path.isfile(path) and os.path.isfile(os.path.join(hub, CAFFE_FILE)):
            path = os.path.join(hub, CAFFE_FILE)
        if not os.path.isfile(path):
            try:
                state = torch.hub.load_state_dict_from_url(TORCHVISION_URL, progress=True, weights_only=True)
            except Exception as exc:  # any network failure means: no weights here
                raise VGGWeightsError(
                    f"--vgg_weights imagenet: no ImageNet VGG16 in {hub} and the download failed "
                    f"({type(exc).__name__}); run `{DOWNLOAD_COMMAND}` to fetch or build it"
                ) from None
            return state, IMAGENET_MEAN, IMAGENET_STD, f"torchvision IMAGENET1K_V1 ({TORCHVISION_URL})"
    else:
        path = weights
        if not os.path.isfile(path):
            raise VGGWeightsError(
                f"--vgg_weights: {path} does not exist; give imagenet, random or "
                f"a saved VGG16 state_dict (see `{DOWNLOAD_COMMAND}`)"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VGGWeightsError(
            f"--vgg_weights: cannot read {path} ({type(exc).__name__}: {exc}); rebuild it with `{DOWNLOAD_COMMAND}`"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        return state["state_dict"], state["mean"], state["std"], f"{path} ({state.get('flavour', 'custom')})"
    return state, IMAGENET_MEAN, IMAGENET_STD, path


# torchvision's VGG16 "D" configuration: conv widths, "M" = 2x2 max-pool.
_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_features(length: int = 31) -> nn.Sequential:
    """The first ``length`` modules of torchvision's ``vgg16().features`` (same indices and keys).

    Built here rather than through torchvision so that the 120M-parameter classifier is never
    allocated; convolutions get torchvision's initialisation (Kaiming normal, fan_out; zero bias).
    """
    modules: list[nn.Module] = []
    channels = 3
    for item in _VGG16_CONFIG:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(channels, item, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            modules += [conv, nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*modules[:length])


class VGG16Features(nn.Module):
    """Frozen ImageNet VGG16 that returns the ReLU feature maps the loss measures with.

    Args:
        layers: indices 0-12 into :data:`LAYER_NAMES` or names (``relu3_1``); default relu3_1, relu4_1, relu4_3.
        weights: ``'imagenet'`` (torchvision's file from the torch hub cache, or the Caffe-flavoured file
            built by ``scripts/download_vgg16.py``; downloaded when online), a path to a saved state_dict,
            or ``'random'`` (smoke tests only; warns).

    ``forward(x)`` takes images (B, 1 or 3, H, W) in [-1, 1] and returns one map per requested layer,
    in the order requested, (B, out_channels[i], H / 2^k, W / 2^k). The pass stops at the deepest layer.
    """

    def __init__(self, layers: Sequence[Union[int, str]] = (4, 7, 9), weights: str = "imagenet") -> None:
        super().__init__()
        self.layers = [_layer_index(layer) for layer in layers]
        if not self.layers:
            raise ValueError("VGG16Features needs at least one layer")
        self.out_channels = [_CHANNELS[i] for i in self.layers]
        self.layer_names = [LAYER_NAMES[i] for i in self.layers]
        self.features = vgg16_features(_TAP_AFTER[max(self.layers)] + 1)
        if weights == "random":
            warnings.warn(
                "VGG16Features: random weights (--vgg_weights random) make the spatially-"
                "correlative loss meaningless; use them for smoke tests only",
                stacklevel=2,
            )
            mean, std, self.description = IMAGENET_MEAN, IMAGENET_STD, "random"
        else:
            state, mean, std, self.description = load_vgg16_weights(weights)
            self._load_features(state)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _load_features(self, state: dict) -> None:
        wanted = self.features.state_dict()
        picked = {}
        for key in wanted:
            for candidate in (f"features.{key}", key):
                if candidate in state:
                    picked[key] = state[candidate]
                    break
        missing = sorted(set(wanted) - set(picked))
        if missing:
            raise VGGWeightsError(f"--vgg_weights: the file lacks VGG16 tensors {', '.join(missing)}")
        for key, value in picked.items():
            if tuple(value.shape) != tuple(wanted[key].shape):
                raise VGGWeightsError(
                    f"--vgg_weights: {key} has shape {tuple(value.shape)}, VGG16 needs {tuple(wanted[key].shape)}"
                )
        self.features.load_state_dict(picked)

    def train(self, mode: bool = True) -> "VGG16Features":
        """The extractor is frozen: it always stays in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 1|3, H, W) in [-1, 1] -> list of (B, C_l, H_l, W_l) post-ReLU maps."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"VGG16Features expects (B, 1 or 3, H, W) images, got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = ((x + 1) * 0.5 - self.mean) / self.std
        taps = {_TAP_AFTER[i]: i for i in self.layers}
        found = {}
        for index, module in enumerate(self.features):
            h = module(h)
            if index in taps:
                found[taps[index]] = h
        return [found[i] for i in self.layers]


# ---------------------------------------------------------------------------------------------
# Pure functions: query sampling, windows, similarity maps and the comparisons.
# ---------------------------------------------------------------------------------------------


def sample_patch_ids(num_positions: int, patch_nums: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Query positions: ``patch_nums`` flat indices drawn without replacement from ``num_positions``.

    Fewer when the map is smaller; every position (in order) when ``patch_nums <= 0``. Drawn on the
    CPU (cheap, and avoids GPU randperm on large maps); returns a LongTensor (Nq,).
    """
    if patch_nums <= 0 or patch_nums >= num_positions:
        if patch_nums <= 0:
            return torch.arange(num_positions)
        return torch.randperm(num_positions, generator=generator)
    return torch.randperm(num_positions, generator=generator)[:patch_nums]


def window_key_ids(query_ids: torch.Tensor, height: int, width: int, patch_size: int) -> torch.Tensor:
    """Flat key positions of each query's p x p window, clamped inside the map.

    query_ids: (Nq,) flat indices (row = idx // W, col = idx % W). Returns (Nq, p*p) flat indices of
    the block whose top-left corner is (clamp(row - p//2, 0, H - p), clamp(col - p//2, 0, W - p)).
    """
    rows = torch.div(query_ids, width, rounding_mode="floor")
    cols = query_ids % width
    top = (rows - patch_size // 2).clamp(0, height - patch_size)  # (Nq,)
    left = (cols - patch_size // 2).clamp(0, width - patch_size)
    offsets = torch.arange(patch_size, device=query_ids.device)
    block = offsets.view(-1, 1) * width + offsets.view(1, -1)  # (p, p) offsets from the corner
    return (top * width + left).view(-1, 1) + block.view(1, -1)  # (Nq, p*p)


def self_similarity(feat: torch.Tensor, query_ids: torch.Tensor, patch_size: int, use_norm: bool) -> torch.Tensor:
    """Similarity of each query to its keys.

    feat: (B, C, H, W) features (already passed through a head, if any). Each map is centred over
    space, then either L2-normalised over channels (``use_norm``: cosine in [-1, 1]) or divided by
    sqrt(C) with s = tanh(q.k / 10). Keys are the query's p x p window when p < H and p < W, else
    every position. Returns (B, Nq, Nk).
    """
    b, c, h, w = feat.shape
    feat = feat - feat.mean(dim=(2, 3), keepdim=True)
    feat = F.normalize(feat, dim=1) if use_norm else feat
    flat = feat.flatten(2)  # (B, C, HW)
    # A blocking copy from the CPU would make the host wait for the GPU's queue on every call.
    query_ids = query_ids.to(feat.device, non_blocking=True)
    queries = flat[:, :, query_ids].transpose(1, 2)  # (B, Nq, C)
    if not use_norm:
        # (q / sqrt(C)) . (k / sqrt(C)) / 10 with the whole factor on the few queries, not on the
        # map and not on the (much larger) product.
        queries = queries * (0.1 / c)
    sim = torch.bmm(queries, flat)  # (B, Nq, HW)
    if patch_size < h and patch_size < w:
        keys = window_key_ids(query_ids, h, w, patch_size)  # (Nq, p*p)
        sim = sim.gather(2, keys.unsqueeze(0).expand(b, -1, -1))  # (B, Nq, p*p)
    return sim if use_norm else torch.tanh(sim)


def masked_comparison(sim_src: torch.Tensor, sim_tgt: torch.Tensor, mode: str, use_norm: bool) -> torch.Tensor:
    """Generator-step comparison of two (B, Nq, Nk) similarity maps; returns a scalar.

    Entries outside the top quarter of each target row (>= its (Nk//4 + 1)-th largest value) are
    zeroed in both maps. ``cos``: criterion(1, cosine of the rows); ``l1``: criterion of the maps
    scaled by Nk / (Nk//4). criterion is L1 with ``use_norm``, SmoothL1 (beta 1) otherwise.
    """
    num_keys = sim_tgt.shape[-1]
    quarter = num_keys // 4
    # the (quarter + 1)-th largest value of each row: topk of a quarter beats kthvalue and a sort
    top = torch.topk(sim_tgt.detach(), quarter + 1, dim=-1, sorted=False).values
    threshold = top.amin(dim=-1, keepdim=True)
    mask = (sim_tgt.detach() >= threshold).to(sim_tgt.dtype)  # (B, Nq, Nk)
    sim_src, sim_tgt = sim_src * mask, sim_tgt * mask
    criterion = F.l1_loss if use_norm else F.smooth_l1_loss
    if mode == "cos":
        cosine = F.cosine_similarity(sim_src, sim_tgt, dim=-1)  # (B, Nq)
        return criterion(cosine, torch.ones_like(cosine))
    if mode == "l1":
        scale = num_keys / max(quarter, 1)
        return criterion(scale * sim_src, scale * sim_tgt)
    raise ValueError(f"unknown comparison mode {mode!r}; choose from cos, l1, info")


def contrastive_comparison(
    sim_src: torch.Tensor, sim_tgt: torch.Tensor, sim_oth: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE over rows of (B, Nq, Nk) maps; returns a scalar.

    Rows are L2-normalised; query i's logits are <src_i, tgt_j>, <src_i, oth_j>, <tgt_i, oth_j> over
    all j, divided by the temperature, with the positive at <src_i, tgt_i>.
    """
    src, tgt, oth = (F.normalize(s, dim=-1) for s in (sim_src, sim_tgt, sim_oth))
    logits = (
        torch.cat(
            [
                torch.bmm(src, tgt.transpose(1, 2)),
                torch.bmm(src, oth.transpose(1, 2)),
                torch.bmm(tgt, oth.transpose(1, 2)),
            ],
            dim=-1,
        )
        / temperature
    )  # (B, Nq, 3Nq)
    num_queries = logits.shape[1]
    target = torch.arange(num_queries, device=logits.device).repeat(logits.shape[0])
    return F.cross_entropy(logits.flatten(0, 1), target)


def _tile_batch(sim: torch.Tensor, batch: int) -> torch.Tensor:
    """(b, Nq, Nk) -> (batch, Nq, Nk) as torch.cat([sim] * (batch // b)); b must divide batch."""
    if sim.shape[0] == batch:
        return sim
    if batch % sim.shape[0]:
        raise ValueError(f"the source batch ({sim.shape[0]}) must equal or divide the target batch ({batch})")
    return sim.repeat(batch // sim.shape[0], 1, 1)


def _head(in_channels: int) -> nn.Sequential:
    hidden = max(32, in_channels // 4)
    head = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1))
    for module in head:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
            nn.init.zeros_(module.bias)
    return head


class SpatialCorrelativeLoss(nn.Module):
    """FSeSim / LSeSim spatially-correlative loss over a list of feature layers.

    Args:
        mode: ``'cos'`` (default), ``'l1'`` or ``'info'`` (contrastive; needs ``other_feats``).
        patch_nums: queries per layer (<= 0: every location).
        patch_size: side p of the local key window; global keys when p >= H or p >= W.
        use_norm: cosine similarity + L1 instead of tanh(dot / 10) + SmoothL1.
        learned: own one 1x1 head per layer (LSeSim); needs ``in_channels``. Its parameters are named
            ``conv_<i>.{0,2}.{weight,bias}`` like published ``net_F`` files.
        temperature: InfoNCE temperature T.
        in_channels: channel count of each layer (``VGG16Features.out_channels``).
        generator: optional torch.Generator (CPU) for drawing queries reproducibly.
    """

    def __init__(
        self,
        mode: str = "cos",
        patch_nums: int = 256,
        patch_size: int = 64,
        use_norm: bool = False,
        learned: bool = False,
        T: float = 0.07,
        in_channels: Optional[Sequence[int]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if mode not in ("cos", "l1", "info"):
            raise ValueError(f"unknown loss mode {mode!r}; choose from cos, l1, info")
        if learned and not in_channels:
            raise ValueError("learned=True needs in_channels (one count per layer)")
        self.mode, self.patch_nums, self.patch_size = mode, patch_nums, patch_size
        self.use_norm, self.learned, self.temperature = use_norm, learned, T
        self.generator = generator
        self.num_layers = len(in_channels) if in_channels else None
        if learned:
            for i, channels in enumerate(in_channels):
                self.add_module(f"conv_{i}", _head(channels))

    def heads(self) -> list[nn.Module]:
        """The learned 1x1 heads, one per layer (empty for FSeSim)."""
        return [getattr(self, f"conv_{i}") for i in range(self.num_layers)] if self.learned else []

    def sample_ids(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Draw one set of query ids per layer for maps shaped like ``feats``."""
        return [sample_patch_ids(f.shape[2] * f.shape[3], self.patch_nums, self.generator) for f in feats]

    def forward(
        self,
        src_feats: Sequence[torch.Tensor],
        tgt_feats: Sequence[torch.Tensor],
        other_feats: Optional[Sequence[torch.Tensor]] = None,
        patch_ids: Optional[Sequence[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """Loss averaged over layers.

        src_feats / tgt_feats / other_feats: lists (one per layer) of (B, C_l, H_l, W_l) maps.
        With ``other_feats`` the contrastive (head-training) form is returned. ``patch_ids``: one
        LongTensor of flat query positions per layer; drawn anew per layer and call when omitted.
        A source batch may also divide the others' (B = k * B_src): it then stands for
        ``torch.cat([src] * k)`` (the head step's [real_A, real_A] with ``--augment``) with its heads
        and similarities computed once. Under ``torch.autocast`` only the heads run in reduced
        precision; the rest is float32.
        """
        if len(src_feats) != len(tgt_feats) or (other_feats is not None and len(other_feats) != len(src_feats)):
            raise ValueError("src_feats, tgt_feats and other_feats need one map per layer each")
        if self.learned and len(src_feats) != self.num_layers:
            raise ValueError(f"the loss has {self.num_layers} heads but got {len(src_feats)} layers")
        if self.mode == "info" and other_feats is None:
            raise ValueError(
                "mode 'info' is contrastive and needs other_feats (e.g. features of the rotated real target image)"
            )
        if patch_ids is None:
            patch_ids = self.sample_ids(src_feats)
        heads = self.heads()
        total = 0.0
        for layer, (src, tgt) in enumerate(zip(src_feats, tgt_feats)):
            maps = [src, tgt] if other_feats is None else [src, tgt, other_feats[layer]]
            # Each map on its own: one that needs no gradient (the source in the generator step,
            # with frozen heads) then builds no graph at all, which halves the backward work.
            maps = [heads[layer](m) if heads else m for m in maps]
            # Under autocast the similarity products, top-quarter masks and softmax would run in
            # 16 bits; they decide the loss, so they stay float32 (the heads may run in 16 bits).
            with torch.autocast(src.device.type, enabled=False):
                sims = [self_similarity(m.float(), patch_ids[layer], self.patch_size, self.use_norm) for m in maps]
                sims[0] = _tile_batch(sims[0], sims[1].shape[0])
                if other_feats is None:
                    total = total + masked_comparison(sims[0], sims[1], self.mode, self.use_norm)
                else:
                    total = total + contrastive_comparison(*sims, self.temperature)
        return total / len(src_feats)
