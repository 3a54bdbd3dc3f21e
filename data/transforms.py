"""Image preprocessing: resize / crop / flip to a tensor in [-1, 1], and colour jitter.

Everything here takes explicit arguments (never an options object) and draws its randomness from
a generator the caller passes in, so a sample is a pure function of (seed, epoch, index).

``preprocess`` is one of :data:`PREPROCESS_MODES`:

- ``resize_and_crop``: resize to ``load_size`` x ``load_size``, then crop ``crop_size``.
- ``crop``: crop ``crop_size`` from the original image.
- ``scale_width``: scale to width ``load_size``, keeping the aspect ratio.
- ``scale_width_and_crop``: scale to width ``load_size``, then crop ``crop_size``.
- ``none``: keep the size (the generator pads to a multiple of 4 itself).

An image smaller than the crop (after the resize step) is scaled up, keeping its aspect ratio,
until the crop fits.
"""

from collections.abc import Callable
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from util.errors import UserError

PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
# Zooming one image per minibatch and cutting grid patches is done by data/singleimage_dataset.py itself.
ZOOM_AND_PATCH = "zoom_and_patch"
# Every value --preprocess accepts (checked by the option parser).
PREPROCESS_CHOICES: tuple[str, ...] = PREPROCESS_MODES + (ZOOM_AND_PATCH,)

# ColorJitter strengths used for A_aug / B_aug (F-LSeSim): brightness, contrast, saturation, hue.
JITTER_BRIGHTNESS = 0.5
JITTER_CONTRAST = 0.5
JITTER_SATURATION = 0.5
JITTER_HUE = 0.3


def _check_mode(preprocess: str) -> None:
    if preprocess == ZOOM_AND_PATCH:
        raise UserError("--preprocess zoom_and_patch works only with --dataset_mode singleimage (--model sinsc)")
    if preprocess not in PREPROCESS_MODES:
        raise UserError(f"--preprocess: unknown mode '{preprocess}'; choose from {', '.join(PREPROCESS_MODES)}")


def uses_crop(preprocess: str) -> bool:
    """True if ``preprocess`` takes a random ``crop_size`` crop."""
    _check_mode(preprocess)
    return preprocess.endswith("crop")


def check_sizes(preprocess: str, load_size: int, crop_size: int) -> None:
    """Raise UserError when the crop cannot fit the resized image (resize_and_crop, scale_width_and_crop)."""
    _check_mode(preprocess)
    if load_size < 1 or crop_size < 1:
        raise UserError(f"--load_size {load_size} / --crop_size {crop_size}: sizes must be positive")
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and crop_size > load_size:
        raise UserError(
            f"--crop_size {crop_size} is larger than --load_size {load_size}; "
            f"with --preprocess {preprocess} the crop must fit"
        )


def resized_size(preprocess: str, load_size: int, crop_size: int, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of an image of ``size`` (width, height) after the resize step, before cropping.

    Includes the upscaling (aspect kept) that makes a too-small image fit the crop.
    """
    _check_mode(preprocess)
    width, height = size
    if preprocess == "resize_and_crop":
        width, height = load_size, load_size
    elif preprocess.startswith("scale_width"):
        width, height = load_size, max(1, round(load_size * height / width))
    if uses_crop(preprocess) and (width < crop_size or height < crop_size):
        scale = max(crop_size / width, crop_size / height)
        width, height = max(crop_size, round(width * scale)), max(crop_size, round(height * scale))
    return width, height


def get_params(
    preprocess: str, load_size: int, crop_size: int, size: tuple[int, int], rng: torch.Generator
) -> dict[str, Any]:
    """Draw the random crop position and flip for one image of ``size`` (width, height).

    Always draws the same number of values from ``rng`` (x, y, flip), whatever the mode.
    Returns ``{'crop_pos': (x, y), 'flip': bool}``; ``crop_pos`` is the top-left corner of the
    crop in the resized image and is (0, 0) when ``preprocess`` does not crop.
    """
    width, height = resized_size(preprocess, load_size, crop_size, size)
    crop = uses_crop(preprocess)
    max_x = width - crop_size if crop else 0
    max_y = height - crop_size if crop else 0
    x = int(torch.randint(0, max_x + 1, (1,), generator=rng))
    y = int(torch.randint(0, max_y + 1, (1,), generator=rng))
    flip = bool(torch.rand(1, generator=rng) < 0.5)
    return {"crop_pos": (x, y), "flip": flip}


def _centre_params(preprocess: str, load_size: int, crop_size: int, size: tuple[int, int]) -> dict[str, Any]:
    width, height = resized_size(preprocess, load_size, crop_size, size)
    if not uses_crop(preprocess):
        return {"crop_pos": (0, 0), "flip": False}
    return {"crop_pos": ((width - crop_size) // 2, (height - crop_size) // 2), "flip": False}


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit PIL image ('L' or 'RGB') -> float tensor (C, H, W) in [-1, 1]."""
    return TF.pil_to_tensor(img).float().div_(127.5).sub_(1.0)


def get_transform(
    *,
    preprocess: str,
    load_size: int,
    crop_size: int,
    channels: int,
    params: dict[str, Any] | None,
    no_flip: bool,
    method: Image.Resampling = Image.Resampling.BICUBIC,
) -> Callable[[Image.Image], torch.Tensor]:
    """Build PIL image -> tensor (``channels``, H, W) in [-1, 1].

    ``params`` comes from :func:`get_params` for the image's size; ``None`` means a centre crop
    without flip (deterministic). The image is converted to 'L' (``channels`` 1) or 'RGB' (3)
    first. With ``preprocess`` 'none' the size is kept exactly.
    """
    _check_mode(preprocess)
    if channels not in (1, 3):
        raise UserError(f"--input_nc/--output_nc: {channels} channels; use 1 or 3")
    target_mode = "L" if channels == 1 else "RGB"

    def transform(img: Image.Image) -> torch.Tensor:
        if img.mode != target_mode:
            img = img.convert(target_mode)
        chosen = params if params is not None else _centre_params(preprocess, load_size, crop_size, img.size)
        new_size = resized_size(preprocess, load_size, crop_size, img.size)
        if new_size != img.size:
            img = img.resize(new_size, method)
        if uses_crop(preprocess):
            x, y = chosen["crop_pos"]
            img = img.crop((x, y, x + crop_size, y + crop_size))
        if chosen["flip"] and not no_flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(img)

    return transform


def color_jitter(img: torch.Tensor | Image.Image, generator: torch.Generator) -> torch.Tensor | Image.Image:
    """ColorJitter(brightness 0.5, contrast 0.5, saturation 0.5, hue 0.3) drawn from ``generator``.

    img: tensor (C, H, W) or (B, C, H, W) in [-1, 1] with C in {1, 3}, or a PIL image.
    Returns the same kind (tensor in [-1, 1], or PIL image). The four adjustments are applied in a
    random order, as torchvision's ColorJitter does; one-channel images get only brightness and
    contrast. All four factors and the order are always drawn, so the generator advances the same
    way for every image.
    """
    order = torch.randperm(4, generator=generator).tolist()
    uniform = torch.rand(4, generator=generator).tolist()
    factors = [
        1.0 + JITTER_BRIGHTNESS * (2.0 * uniform[0] - 1.0),
        1.0 + JITTER_CONTRAST * (2.0 * uniform[1] - 1.0),
        1.0 + JITTER_SATURATION * (2.0 * uniform[2] - 1.0),
        JITTER_HUE * (2.0 * uniform[3] - 1.0),
    ]
    is_tensor = isinstance(img, torch.Tensor)
    out = (img + 1.0) / 2.0 if is_tensor else img  # adjust_* expect [0, 1] floats
    channels = out.shape[-3] if is_tensor else len(out.getbands())
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for op in order:
        if op >= 2 and channels != 3:
            continue  # saturation and hue are undefined for one channel
        out = adjust[op](out, factors[op])
    return out * 2.0 - 1.0 if is_tensor else out
