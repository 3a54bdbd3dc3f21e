"""Feature networks for realism scores, image-folder features, and the cache of real-image features.

Two networks give (N, D) features for :mod:`evaluations.fid`, :mod:`evaluations.kid` and
:mod:`evaluations.prdc`:

- ``inception``: pytorch-fid's own ``InceptionV3`` with the ``pt_inception-2015-12-05`` weights
  (pool3, 2048-d by default; 64/192/768 also accepted). Images go in as pytorch-fid feeds them: RGB
  in [0, 1] at their stored size; the network resizes them bilinearly to 299 x 299. With a weights
  path nothing touches the network; without one pytorch-fid downloads the file (torch hub cache).
  These are the FIDs papers publish.
- ``efficientnet_lite0``: ImageNet EfficientNet-Lite0, 1280-d pooled features at 224 x 224; it works
  offline (``python scripts/download_efficientnet_lite0.py``) but its scores are NOT comparable with
  published Inception FIDs, only with each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from evaluations.efficientnet_lite import EfficientNetLite0, convert_state_dict
from util.checkpoint import safe_load
from util.errors import UserError
from util.image_io import atomic_path

# pytorch-fid's extensions plus this project's, matched in any letter case.
IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
EFFICIENTNET_FILE = "efficientnet-lite0-57934424.pth"
EFFICIENTNET_COMMAND = "python scripts/download_efficientnet_lite0.py"


def hub_checkpoint_dir() -> str:
    """``$TORCH_HOME/hub/checkpoints``, where torch hub keeps downloaded weights."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def file_digest(path: str) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


class InceptionFeatures(nn.Module):
    """pytorch-fid's Inception v3: images (B, 3, H, W) in [0, 1] -> (B, dims) features.

    Args:
        weights: path to ``pt_inception-2015-12-05-6726825d.pth`` (or any state_dict with its keys);
            None lets pytorch-fid find it in the torch hub cache or download it.
        dims: 2048 (pool3, the FID standard), 768, 192 or 64 (pytorch-fid's other blocks).
    """

    name = "inception"
    comparable = True

    def __init__(self, weights: Optional[str] = None, dims: int = 2048) -> None:
        super().__init__()
        try:
            import pytorch_fid.inception as fid_inception
        except ImportError:
            raise UserError(
                "--features inception needs pytorch-fid (pip install 'pytorch-fid>=0.3'), "
                "or use --features efficientnet_lite0"
            ) from None
        if dims not in fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM:
            raise UserError(f"--dims {dims}: pytorch-fid's Inception gives 64, 192, 768 or 2048")
        block = fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]
        self.dims = dims
        if weights is None:
            self.net = self._build_downloaded(fid_inception, block)
            self.weights_path = os.path.join(hub_checkpoint_dir(), INCEPTION_FILE)
        else:
            state = safe_load(weights, "--inception_weights")
            # pytorch-fid builds its network and fetches the weights in one call; hand it the local
            # file's tensors instead of its downloader, so a given path never touches the network.
            with _replaced(fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
                try:
                    self.net = fid_inception.InceptionV3([block])
                except (RuntimeError, KeyError, TypeError) as exc:
                    first = str(exc).strip().splitlines()[0][:160]
                    raise UserError(
                        f"--inception_weights {weights}: not pytorch-fid's FID Inception weights ({first})"
                    ) from None
            self.weights_path = weights
        self.description = f"pytorch-fid Inception v3 ({os.path.basename(self.weights_path)}), {dims}-d"
        self.net.eval()

    @staticmethod
    def _build_downloaded(fid_inception: Any, block: int) -> nn.Module:
        try:
            return fid_inception.InceptionV3([block])
        except Exception as exc:  # any download failure: no weights here
            raise UserError(
                f"--inception_weights: pytorch-fid could not get its Inception weights "
                f"({type(exc).__name__}); download {fid_inception.FID_WEIGHTS_URL} and pass "
                "--inception_weights PATH, or use --features efficientnet_lite0"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) RGB in [0, 1] -> (B, dims), as pytorch-fid's get_activations."""
        out = self.net(images)[0]
        if out.shape[2] != 1 or out.shape[3] != 1:
            out = F.adaptive_avg_pool2d(out, output_size=(1, 1))
        return out.flatten(1)


class EfficientNetLite0Features(nn.Module):
    """ImageNet EfficientNet-Lite0: images (B, 3, H, W) in [0, 1] -> (B, 1280) pooled features.

    Images are resized bilinearly to 224 x 224 and mapped to [-1, 1]. Scores on these features
    compare runs with each other, never with published (Inception) FIDs.

    Args:
        weights: path to ``efficientnet-lite0-57934424.pth``; None looks in the torch hub cache.
    """

    name = "efficientnet_lite0"
    comparable = False
    dims = 1280

    def __init__(self, weights: Optional[str] = None) -> None:
        super().__init__()
        if weights is None:
            weights = os.path.join(hub_checkpoint_dir(), EFFICIENTNET_FILE)
            if not os.path.isfile(weights):
                raise UserError(
                    f"--feature_weights: no EfficientNet-Lite0 weights in {hub_checkpoint_dir()}; "
                    f"run `{EFFICIENTNET_COMMAND}` or pass --feature_weights PATH"
                )
        state = convert_state_dict(safe_load(weights, "--feature_weights"))
        self.net = EfficientNetLite0()
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise UserError(f"--feature_weights {weights}: not EfficientNet-Lite0 weights ({first})") from None
        self.weights_path = weights
        self.description = (
            f"EfficientNet-Lite0 ({os.path.basename(weights)}), 1280-d; not comparable with published Inception FIDs"
        )
        self.net.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) RGB in [0, 1] -> (B, 1280)."""
        x = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        return self.net.features((x - 0.5) / 0.5)


FEATURES: dict[str, Callable[..., nn.Module]] = {
    "inception": InceptionFeatures,
    "efficientnet_lite0": EfficientNetLite0Features,
}


def build_feature_extractor(
    name: str, weights: Optional[str] = None, dims: int = 2048, device: str | torch.device = "cpu"
) -> nn.Module:
    """The frozen feature network ``name`` (a key of :data:`FEATURES`) on ``device``, in eval mode."""
    if name not in FEATURES:
        raise UserError(f"--features {name}: choose from {', '.join(sorted(FEATURES))}")
    net = FEATURES[name](weights=weights, dims=dims) if name == "inception" else FEATURES[name](weights=weights)
    return net.requires_grad_(False).eval().to(device)


def list_images(folder: str, option: str = "folder") -> list[str]:
    """Sorted image files directly inside ``folder`` (not its subfolders), any extension case."""
    if not os.path.isdir(folder):
        raise UserError(f"{option} {folder} does not exist")
    paths = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))
    )
    if not paths:
        raise UserError(f"{option} {folder} holds no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})")
    return paths


def load_rgb(path: str) -> torch.Tensor:
    """The image at ``path`` as pytorch-fid reads it: (3, H, W) float32 RGB in [0, 1]."""
    try:
        with Image.open(path) as image:
            array = np.array(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


@torch.no_grad()
def compute_features(
    paths: list[str], extractor: nn.Module, batch_size: int = 50, device: str | torch.device = "cpu"
) -> np.ndarray:
    """(N, D) float64 features of the images at ``paths``, in order.

    Consecutive images of equal size share a batch (at most ``batch_size``), so folders of mixed
    sizes work; every image is resized by the network itself, as in pytorch-fid.
    """
    rows: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    for path in paths:
        image = load_rgb(path)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            rows.append(extractor(torch.stack(batch).to(device)).double().cpu().numpy())
            batch = []
        batch.append(image)
    if batch:
        rows.append(extractor(torch.stack(batch).to(device)).double().cpu().numpy())
    return np.concatenate(rows, axis=0)


def folder_key(paths: list[str], extractor: nn.Module) -> str:
    """A digest of the feature network (name, dims, weights file bytes) and every image's name and bytes."""
    digest = hashlib.sha256(f"{extractor.name}:{extractor.dims}:{file_digest(extractor.weights_path)}".encode())
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0" + file_digest(path).encode())
    return digest.hexdigest()[:32]


def cached_folder_features(
    folder: str,
    extractor: nn.Module,
    cache_dir: str,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    option: str = "folder",
) -> np.ndarray:
    """(N, D) features of every image in ``folder``, computed once per folder content.

    The cache file ``<cache_dir>/<name>_<key>.npz`` is keyed by :func:`folder_key`, so any change
    of an image, of the file list or of the network's weights computes the features again.
    """
    paths = list_images(folder, option)
    path = os.path.join(cache_dir, f"{extractor.name}{extractor.dims}_{folder_key(paths, extractor)}.npz")
    if os.path.isfile(path):
        with np.load(path) as cached:
            return cached["features"].astype(np.float64)
    features = compute_features(paths, extractor, batch_size, device)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # Network outputs are float32, so storing them as float32 loses nothing.
        np.savez(f, features=features.astype(np.float32), folder=os.path.abspath(folder), count=len(paths))
    return features
