"""LPIPS diversity: how different the several translations of one input are (higher = more diverse).

LPIPS (Zhang et al., CVPR 2018, version 0.1) comes from the ``lpips`` package: VGG16 features at
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each unit-normalised over channels, the squared
differences weighted per channel by the package's learned linear layers (``lin0``-``lin4``, shipped
inside its wheel), averaged over space and summed over the five layers (0 = identical).

For a multimodal model (``--model mmsc``) the diversity of one input is the mean LPIPS over all
K(K-1)/2 unordered pairs of its K translations, and the score of a set is the mean over its inputs
(as MUNIT and DRIT report it)::

    metric = LPIPSVGG(weights="imagenet")
    print(metric.note)
    score = metric.mean_diversity(groups, progress=True)   # groups: (K, 3, H, W) tensors in [-1, 1]

The VGG16 backbone is the project's own file (the same ``weights`` as ``--vgg_weights``, read by
:mod:`models.sesim`), never a download. Only torchvision's ImageNet VGG16 (``vgg16-397923af.pth``)
gives scores comparable with published LPIPS; with the Caffe-flavoured file that
``python scripts/download_vgg16.py`` builds offline the scores compare runs with each other only
(:attr:`LPIPSVGG.torchvision_weights`, :attr:`LPIPSVGG.note`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Optional

import lpips
import torch
import torch.nn as nn
from tqdm import tqdm

from evaluations.features import load_rgb
from models.sesim import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TORCHVISION_FILE,
    VGGWeightsError,
    load_vgg16_weights,
    vgg16_features,
)
from util.errors import UserError

__all__ = ["LPIPS_LAYERS", "LPIPSVGG", "load_image", "load_images"]

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# torchvision's VGG16 ``features`` stops at relu5_3 (index 29) for LPIPS: the last max-pool is unused.
_TRUNK_LENGTH = 30
# What torchvision (>= 0.13) and torch (2.4-2.5) say about the lpips package's own calls
# (``vgg16(pretrained=...)``, ``torch.load`` without ``weights_only``): noise for our users.
_PACKAGE_WARNINGS = (
    (UserWarning, r"The parameter 'pretrained' is deprecated"),
    (UserWarning, r"Arguments other than a weight enum"),
    (FutureWarning, r"You are using `torch.load` with `weights_only=False`"),
)


def _quiet_lpips(**kwargs: object) -> lpips.LPIPS:
    with warnings.catch_warnings():
        for category, message in _PACKAGE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        return lpips.LPIPS(**kwargs)


def _pick_trunk(state: dict, source: str) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """torchvision ``features`` index -> (weight, bias) of every convolution up to relu5_3, from a
    VGG16 state_dict keyed ``features.{i}.weight`` (or ``{i}.weight``); strict on keys and shapes."""
    picked: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    missing: list[str] = []
    with torch.device("meta"):  # shapes only: nothing allocated
        reference = vgg16_features(_TRUNK_LENGTH)
    for index, module in enumerate(reference):
        if not isinstance(module, nn.Conv2d):
            continue
        pair = []
        for kind in ("weight", "bias"):
            key = next((k for k in (f"features.{index}.{kind}", f"{index}.{kind}") if k in state), None)
            if key is None:
                missing.append(f"features.{index}.{kind}")
                continue
            wanted = tuple(getattr(module, kind).shape)
            if tuple(state[key].shape) != wanted:
                raise VGGWeightsError(
                    f"LPIPS backbone {source}: {key} has shape {tuple(state[key].shape)}, VGG16 needs {wanted}"
                )
            pair.append(state[key])
        if len(pair) == 2:
            picked[index] = (pair[0], pair[1])
    if missing:
        raise VGGWeightsError(f"LPIPS backbone {source}: the VGG16 file lacks {', '.join(missing)}")
    return picked


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 (VGG) with the project's VGG16 backbone; frozen, always in eval mode.

    Args:
        weights: ``'imagenet'`` (torchvision's file from the torch hub cache, else the Caffe-flavoured
            file of ``scripts/download_vgg16.py``) or a path to a saved VGG16 state_dict, as
            ``--vgg_weights``. Every convolution of relu1_1-relu5_3 must be in the file.
        batch_size: the most images per backbone pass and the most pairs per difference step in
            :meth:`diversity`.

    Attributes:
        net: the ``lpips.LPIPS`` module (its linear layers from the package's ``weights/v0.1/vgg.pth``).
        description: where the backbone came from (a path, with the file's flavour when it records one).
        torchvision_weights: True only for torchvision's ``vgg16-397923af.pth``, the backbone of
            published LPIPS numbers.
        mean, std: the RGB preprocessing of the file on a [0, 1] scale.

    Images go in as (N, 1 or 3, H, W) in [-1, 1] (grey is repeated to RGB), at least 16 x 16.
    """

    def __init__(self, weights: str = "imagenet", batch_size: int = 32) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"LPIPSVGG: batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        state, mean, std, self.description = load_vgg16_weights(weights)
        trunk = _pick_trunk(state, self.description)  # before building the package: a bad file fails at once
        # pnet_rand=True: the package must not fetch torchvision's weights; the trunk is loaded below.
        self.net = _quiet_lpips(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self._check_linear_layers()
        self._load_trunk(trunk)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.torchvision_weights = (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD) and (
            self.description.startswith("torchvision") or os.path.basename(self.description) == TORCHVISION_FILE
        )
        # The package feeds the trunk (x - shift) / scale for x in [-1, 1]; the file wants
        # (x01 - mean) / std with x01 = (x + 1) / 2, and ((x + 1) / 2 - mean) / std
        # = (x + 1 - 2 mean) / (2 std) = (x - (2 mean - 1)) / (2 std). With torchvision's ImageNet
        # statistics this is the package's own constants (shift -0.030, -0.088, -0.188; scale 0.458, ...).
        scaling = self.net.scaling_layer
        scaling.shift.copy_(torch.tensor(self.mean).view(1, 3, 1, 1) * 2 - 1)
        scaling.scale.copy_(torch.tensor(self.std).view(1, 3, 1, 1) * 2)
        self.requires_grad_(False)
        self.eval()

    def _check_linear_layers(self) -> None:
        """The package loads its linear layers with ``strict=False``: make sure they really loaded."""
        path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        for index, layer in enumerate(self.net.lins):
            key = f"lin{index}.model.1.weight"
            if key not in saved or not torch.equal(layer.model[-1].weight.detach().cpu(), saved[key]):
                raise RuntimeError(f"lpips {lpips.__file__}: its linear layer {key} did not load from {path}")

    def _load_trunk(self, trunk: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Copy :func:`_pick_trunk`'s tensors into the package's slices, which keep torchvision's indices."""
        convs = {}
        for name, module in self.net.net.named_modules():
            if isinstance(module, nn.Conv2d):
                convs[int(name.rsplit(".", 1)[-1])] = module
        if sorted(convs) != sorted(trunk):
            raise RuntimeError(
                f"lpips {lpips.__file__}: its VGG16 slices hold convolutions {sorted(convs)}, "
                f"expected torchvision's {sorted(trunk)}"
            )
        with torch.no_grad():
            for index, conv in convs.items():
                conv.weight.copy_(trunk[index][0])
                conv.bias.copy_(trunk[index][1])

    @property
    def note(self) -> str:
        """One line for logs: the backbone, and whether the scores compare with published LPIPS."""
        line = f"LPIPS backbone: {self.description}"
        if not self.torchvision_weights:
            line += "; NOT torchvision's VGG16 weights, so scores are not comparable with published LPIPS"
        return line

    def train(self, mode: bool = True) -> "LPIPSVGG":
        """The metric is frozen: it always stays in eval mode (the package's linear layers hold dropout)."""
        return super().train(False)

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS: {name} must be (N, 1 or 3, H, W) images, got {tuple(x.shape)}")
        if x.numel() and (x.min() < -1.001 or x.max() > 1.001):
            raise ValueError(
                f"LPIPS: {name} must be in [-1, 1], got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]"
            )
        x = x.to(self.net.scaling_layer.shift.device, torch.float32)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    @torch.no_grad()
    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (N, C, H, W) images in [-1, 1] -> (N,) LPIPS of each pair x[n], y[n] (the package's forward)."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: images of equal shape needed, got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.net(self._prepare(x, "x"), self._prepare(y, "y")).flatten()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`distance`."""
        return self.distance(x, y)

    @torch.no_grad()
    def _normalised_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(K, 3, H, W) -> five unit-normalised (K, C_l, H_l, W_l) maps, ``batch_size`` images a pass."""
        chunks: list[list[torch.Tensor]] = [[] for _ in LPIPS_LAYERS]
        for start in range(0, images.shape[0], self.batch_size):
            outs = self.net.net(self.net.scaling_layer(images[start : start + self.batch_size]))
            for layer, out in enumerate(outs):
                chunks[layer].append(lpips.normalize_tensor(out))
        return [torch.cat(parts) for parts in chunks]

    @torch.no_grad()
    def diversity(self, outputs: torch.Tensor) -> float:
        """outputs: (K, C, H, W) translations of one input in [-1, 1], K >= 2 -> mean LPIPS over the
        K(K-1)/2 unordered pairs.

        The backbone sees each image once; the pairs' weighted feature differences go ``batch_size``
        pairs at a time (the same arithmetic as the package's forward, so equal to :meth:`distance`).
        """
        if outputs.dim() != 4 or outputs.shape[0] < 2:
            raise ValueError(f"LPIPS diversity needs (K, C, H, W) outputs with K >= 2, got {tuple(outputs.shape)}")
        feats = self._normalised_features(self._prepare(outputs, "outputs"))
        first, second = torch.triu_indices(outputs.shape[0], outputs.shape[0], offset=1, device=feats[0].device)
        total = torch.zeros((), dtype=torch.float64, device=feats[0].device)
        for start in range(0, first.numel(), self.batch_size):
            i, j = first[start : start + self.batch_size], second[start : start + self.batch_size]
            scores = torch.zeros(i.numel(), device=feats[0].device)
            for feat, lin in zip(feats, self.net.lins):
                scores += lin((feat[i] - feat[j]) ** 2).mean(dim=(1, 2, 3))
            total += scores.double().sum()
        return float(total) / first.numel()

    def mean_diversity(
        self, groups: Iterable[torch.Tensor], progress: bool = False, total: Optional[int] = None
    ) -> float:
        """Mean of :meth:`diversity` over ``groups``, each a (K, C, H, W) tensor of one input's K
        translations (K may differ between inputs). ``progress`` shows a tqdm bar (``total`` inputs)."""
        values = [
            self.diversity(group)
            for group in tqdm(groups, desc="LPIPS diversity", unit="input", total=total, disable=not progress)
        ]
        if not values:
            raise ValueError("LPIPS mean_diversity: no groups of outputs given")
        return sum(values) / len(values)


def load_image(path: str) -> torch.Tensor:
    """The image file at ``path`` (PNG, JPEG, ...) as (3, H, W) float32 RGB in [-1, 1]."""
    return load_rgb(path) * 2 - 1


def load_images(paths: Sequence[str]) -> torch.Tensor:
    """Image files of one size (e.g. the K translations of one input) as (K, 3, H, W) in [-1, 1]."""
    if not paths:
        raise UserError("LPIPS: no image files given")
    images = [load_image(path) for path in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise UserError(
                f"LPIPS: {path} is {image.shape[2]}x{image.shape[1]}, "
                f"{paths[0]} is {images[0].shape[2]}x{images[0].shape[1]}; translations of "
                "one input must share a size"
            )
    return torch.stack(images)
