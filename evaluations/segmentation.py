"""Cityscapes label -> photo scoring: a segmentation network labels the generated photos, and
per-pixel accuracy, per-class accuracy and mean IoU compare its labels with the ground truth.

The 19 evaluation classes are Cityscapes' train ids; every other label id (and license plates)
is ignored (255). The scores follow pix2pix/CUT's evaluation: one confusion matrix summed over all
images (rows = ground truth, columns = prediction), then

- per-pixel accuracy = trace / total,
- per-class accuracy = mean over classes present in the ground truth of diag / row sum,
- mean IoU = mean over classes with a non-empty union of diag / (row + column - diag).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

NUM_CLASSES = 19
IGNORE = 255
CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# Cityscapes label id -> train id (cityscapesScripts' labels.py); ids not listed are ignored.
_TRAIN_ID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
ID_TO_TRAIN_ID = np.full(256, IGNORE, dtype=np.uint8)
for _id, _train_id in _TRAIN_ID.items():
    ID_TO_TRAIN_ID[_id] = _train_id

# Colours of gtFine_color.png -> train id. The 19 classes, then the colours of ignored classes.
# (153,153,153) is pole and also "polegroup", (0,0,142) car and also "license plate": both are
# read as the train class.
COLOUR_TO_TRAIN_ID = {
    (128, 64, 128): 0,
    (244, 35, 232): 1,
    (70, 70, 70): 2,
    (102, 102, 156): 3,
    (190, 153, 153): 4,
    (153, 153, 153): 5,
    (250, 170, 30): 6,
    (220, 220, 0): 7,
    (107, 142, 35): 8,
    (152, 251, 152): 9,
    (70, 130, 180): 10,
    (220, 20, 60): 11,
    (255, 0, 0): 12,
    (0, 0, 142): 13,
    (0, 0, 70): 14,
    (0, 60, 100): 15,
    (0, 80, 100): 16,
    (0, 0, 230): 17,
    (119, 11, 32): 18,
    (0, 0, 0): IGNORE,
    (111, 74, 0): IGNORE,
    (81, 0, 81): IGNORE,
    (250, 170, 160): IGNORE,
    (230, 150, 140): IGNORE,
    (180, 165, 180): IGNORE,
    (150, 100, 100): IGNORE,
    (150, 120, 90): IGNORE,
    (0, 0, 90): IGNORE,
    (0, 0, 110): IGNORE,
}

# Mean and std of the Cityscapes training photos that the DRN models were trained with (RGB, [0, 1]).
DRN_MEAN = (0.290101, 0.328081, 0.286964)
DRN_STD = (0.182954, 0.186566, 0.184475)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) Cityscapes label ids (gtFine_labelIds.png) -> (H, W) uint8 train ids, 255 = ignore."""
    return ID_TO_TRAIN_ID[np.asarray(label_ids).astype(np.int64).clip(0, 255)]


def colours_to_train_ids(rgb: np.ndarray, tolerance: float = 30.0) -> np.ndarray:
    """(H, W, 3) uint8 colour label map -> (H, W) uint8 train ids.

    Each pixel takes the class of the nearest Cityscapes colour (so JPEG noise is forgiven), or 255
    when even that is farther than ``tolerance`` (Euclidean, 0-255 RGB).
    """
    colours = np.array(list(COLOUR_TO_TRAIN_ID), dtype=np.float64)  # (K, 3)
    classes = np.array(list(COLOUR_TO_TRAIN_ID.values()), dtype=np.uint8)  # (K,)
    pixels = np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3)  # (HW, 1, 3)
    distances = np.sqrt(((pixels - colours[None]) ** 2).sum(-1))  # (HW, K)
    nearest = distances.argmin(axis=1)
    train_ids = np.where(distances[np.arange(len(nearest)), nearest] <= tolerance, classes[nearest], IGNORE)
    return train_ids.reshape(np.asarray(rgb).shape[:2]).astype(np.uint8)


def confusion_matrix(prediction: np.ndarray, label: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) int64 counts: entry [t, p] = pixels of true class t predicted as p.

    Pixels whose label is outside [0, C) (e.g. 255) are ignored; predictions must be in [0, C).
    """
    label = np.asarray(label).astype(np.int64).ravel()
    prediction = np.asarray(prediction).astype(np.int64).ravel()
    keep = (label >= 0) & (label < num_classes)
    counts = np.bincount(num_classes * label[keep] + prediction[keep], minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(hist: np.ndarray) -> dict:
    """Scores of a (C, C) confusion matrix: pixel_accuracy, class_accuracy, mean_iou (floats in
    [0, 1]) and the per-class lists class_accuracies / ious (NaN for classes absent from both)."""
    hist = np.asarray(hist, dtype=np.float64)
    diag, rows, cols = np.diag(hist), hist.sum(axis=1), hist.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_acc = np.where(rows > 0, diag / rows, np.nan)
        union = rows + cols - diag
        iou = np.where(union > 0, diag / union, np.nan)
    return {
        "pixel_accuracy": float(diag.sum() / hist.sum()) if hist.sum() else float("nan"),
        "class_accuracy": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "class_accuracies": class_acc.tolist(),
        "ious": iou.tolist(),
    }


@torch.no_grad()
def predict_labels(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    mean: Iterable[float] = DRN_MEAN,
    std: Iterable[float] = DRN_STD,
) -> torch.Tensor:
    """images: (B, 3, H, W) RGB in [0, 1] -> (B, H, W) int64 class ids (argmax of the scores).

    ``net`` maps normalised images to (B, C, h, w) class scores; scores of another size are
    resized bilinearly to H x W first.
    """
    mean_t = torch.tensor(list(mean), device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(list(std), device=images.device).view(1, 3, 1, 1)
    scores = net((images - mean_t) / std_t)
    if scores.shape[-2:] != images.shape[-2:]:
        scores = F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return scores.argmax(dim=1)


def read_train_ids(path: str, kind: str) -> np.ndarray:
    """(H, W) uint8 train ids from a label file.

    kind: ``label_ids`` (gtFine_labelIds.png), ``train_ids`` (already 0-18 / 255), ``colour``
    (gtFine_color.png) or ``aligned`` (the colour map in the right half of a pix2pix-style
    photo | label image; JPEG-compressed colours are matched to the nearest class colour).
    """
    from PIL import Image

    with Image.open(path) as image:
        if kind in ("label_ids", "train_ids"):
            values = np.array(image)
            if values.ndim != 2:
                raise ValueError(f"{path}: a {kind} map must have one channel, got shape {values.shape}")
            return label_ids_to_train_ids(values) if kind == "label_ids" else values.astype(np.uint8)
        rgb = np.array(image.convert("RGB"))
    if kind == "aligned":
        rgb = rgb[:, rgb.shape[1] // 2 :]
    elif kind != "colour":
        raise ValueError(f"unknown label kind {kind!r}; choose label_ids, train_ids, colour or aligned")
    return colours_to_train_ids(rgb)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) class ids -> (height, width) by nearest neighbour (PIL's, as label maps are resized)."""
    from PIL import Image

    if labels.shape == (height, width):
        return labels
    return np.array(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))


def confusion_of_pairs(
    pairs: Iterable[tuple[torch.Tensor, np.ndarray]],
    net: Callable[[torch.Tensor], torch.Tensor],
    device: str | torch.device = "cpu",
    num_classes: int = NUM_CLASSES,
    **normalisation: Iterable[float],
) -> np.ndarray:
    """Summed (C, C) confusion matrix of ``net``'s labels for (image (3, H, W) in [0, 1], label
    (H, W) train ids) pairs; ``normalisation`` (mean=, std=) goes to :func:`predict_labels`."""
    hist = np.zeros((num_classes, num_classes), dtype=np.int64)
    for image, label in pairs:
        prediction = predict_labels(net, image[None].to(device), **normalisation)[0].cpu().numpy()
        hist += confusion_matrix(prediction, label, num_classes)
    return hist
