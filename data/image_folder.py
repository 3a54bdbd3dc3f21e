"""Finding and reading image files.

``make_dataset`` lists the images under a folder (recursively, sorted); ``load_image`` opens one
image in any common PIL mode and returns it as 8-bit ``'RGB'`` or ``'L'``, so the rest of the
pipeline only ever sees those two modes.
"""

import math
import os
import struct

import numpy as np
from PIL import Image

from util.errors import UserError

IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff")

# Modes whose samples are 16-bit (or 32-bit holding 16-bit values, as some PNG readers produce).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def is_image_file(filename: str) -> bool:
    """True if ``filename`` ends with one of :data:`IMG_EXTENSIONS`, in any letter case."""
    return filename.lower().endswith(IMG_EXTENSIONS)


def make_dataset(directory: str, max_size: float = math.inf, *, option: str = "--dataroot") -> list[str]:
    """All image paths under ``directory`` (recursively), sorted, at most ``max_size`` of them.

    Raises UserError (naming ``option``) when the folder does not exist or holds no images.
    """
    if not os.path.isdir(directory):
        raise UserError(f"{option}: {directory} does not exist")
    paths = []
    for root, _, names in os.walk(directory, followlinks=True):
        paths.extend(os.path.join(root, name) for name in names if is_image_file(name))
    if not paths:
        extensions = ", ".join(ext.lstrip(".") for ext in IMG_EXTENSIONS)
        raise UserError(f"{option}: {directory} has no images ({extensions})")
    paths.sort()
    return paths[: int(min(max_size, len(paths)))]


def has_images(directory: str) -> bool:
    """True if ``directory`` directly (not in a subfolder) holds at least one image file."""
    if not os.path.isdir(directory):
        return False
    return any(is_image_file(name) and os.path.isfile(os.path.join(directory, name)) for name in os.listdir(directory))


def _sixteen_bit_to_grey(img: Image.Image) -> Image.Image:
    """Map a 16-bit grey image to 8-bit ``'L'`` so that 0 -> 0 and 65535 -> 255."""
    values = np.asarray(img).astype(np.float64)  # (H, W), 0..65535
    scaled = np.clip(values, 0, 65535) * (255.0 / 65535.0)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or img.info.get("transparency") is not None


def _to_rgb_or_grey(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit ``'RGB'`` or ``'L'``; transparent pixels are composited over white."""
    if img.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_grey(img)
    if _has_transparency(img):
        rgba = img.convert("RGBA")
        # Transparent regions are usually background; white matches how viewers show them.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("RGB", "L"):
        return img.copy()
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # P, CMYK, YCbCr, HSV, F ...


def convert_image(img: Image.Image, channels: int) -> Image.Image:
    """An opened image in any PIL mode as the pipeline sees it: 8-bit ``'RGB'`` (``channels`` 3) or ``'L'``
    (``channels`` 1), converted as :func:`load_image` converts files (used for images given in memory)."""
    converted = _to_rgb_or_grey(img)
    target = "RGB" if channels == 3 else "L"
    return converted if converted.mode == target else converted.convert(target)


def load_image(path: str, channels: int) -> Image.Image:
    """Read the image at ``path`` as 8-bit ``'RGB'`` (``channels`` 3) or ``'L'`` (``channels`` 1).

    Handles greyscale, RGBA / LA / palette transparency (over white), palette, 16-bit grey
    (65535 -> 255) and CMYK. Any failure raises ``UserError("cannot read image <path>: <reason>")``.
    """
    if channels not in (1, 3):
        raise UserError(f"--input_nc/--output_nc: {channels} channels requested for {path}; use 1 or 3")
    try:
        with Image.open(path) as img:
            img.load()
            return convert_image(img, channels)
    # Pillow reports damaged files through many exception types, not only OSError.
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        IndexError,
        TypeError,
        struct.error,
        Image.DecompressionBombError,
    ) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read image {path}: {reason}") from exc
