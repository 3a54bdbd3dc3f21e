"""Image conversion and atomic file writing.

``tensor2im`` turns a network output in ``[-1, 1]`` into an 8-bit RGB array; ``save_image`` writes
it as PNG (optionally stretched by ``--aspect_ratio``). Every writer in this package goes through
:func:`atomic_path`, so a crash or a reader never sees a half-written file.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

ImageLike = torch.Tensor | np.ndarray


def mkdirs(paths: str | list[str]) -> None:
    """Create one directory or each of a list of directories, parents included; existing ones are fine."""
    for path in [paths] if isinstance(paths, str) else paths:
        os.makedirs(path, exist_ok=True)


def _default_file_mode() -> int:
    """0o666 minus the process umask: what ``open(path, 'w')`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary file name next to ``path``; on success it replaces ``path`` in one step.

    The temporary file lives in the same directory so that ``os.replace`` is a rename on one file
    system (atomic on POSIX and Windows). On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    mkdirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _default_file_mode())  # mkstemp makes owner-only files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def tensor2im(image: torch.Tensor) -> np.ndarray:
    """Convert a network image in ``[-1, 1]`` to an 8-bit RGB array.

    Args:
        image: (C, H, W) or (B, C, H, W) tensor with C = 1 or 3, values in [-1, 1] (any device or
            float dtype). For a batch only the first image is converted.

    Returns:
        (H, W, 3) uint8 array. The value is ``floor((x + 1) * 127.5 + 0.5)`` clamped to [0, 255]
        (round half up), so -1 -> 0, 0 -> 128, 1 -> 255; NaN becomes 0. One channel is repeated
        to three.
    """
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"tensor2im expects (C,H,W) or (B,C,H,W) with C in (1, 3), got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, (1 << 20) // max(width, 1))  # a megapixel at a time: a phone photo needs no float64 copy
    for top in range(0, height, rows):
        # float64 keeps the half-way points (e.g. x = 0 -> 127.5) exact before rounding.
        values = image[:, top : top + rows].detach().to("cpu", torch.float64).nan_to_num(nan=-1.0)
        values = torch.floor((values + 1.0) * 127.5 + 0.5).clamp(0.0, 255.0)
        if values.shape[0] == 1:
            values = values.expand(3, -1, -1)
        out[top : top + rows] = values.permute(1, 2, 0).to(torch.uint8).numpy()
    return out


def _as_uint8_rgb(image: ImageLike) -> np.ndarray:
    """A tensor in [-1, 1] or a uint8 array (H, W) / (H, W, 1|3) as a (H, W, 3) uint8 array."""
    if isinstance(image, torch.Tensor):
        return tensor2im(image)
    if image.dtype != np.uint8:
        raise ValueError(f"save_image expects a uint8 array or a tensor in [-1, 1], got a {image.dtype} array")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"save_image expects an (H,W), (H,W,1) or (H,W,3) array, got {image.shape}")
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def stretched_size(height: int, width: int, aspect_ratio: float) -> tuple[int, int]:
    """The (height, width) ``save_image`` writes for an image of ``height`` x ``width``.

    ``aspect_ratio > 1`` stretches the height to ``round(height * aspect_ratio)``; ``< 1``
    stretches the width to ``round(width / aspect_ratio)``; 1 keeps the size. The image only ever
    grows, as in CycleGAN's test.py for its square outputs.
    """
    if aspect_ratio <= 0:
        raise ValueError(f"aspect_ratio must be positive, got {aspect_ratio}")
    if aspect_ratio > 1.0:
        return int(round(height * aspect_ratio)), width
    if aspect_ratio < 1.0:
        return height, int(round(width / aspect_ratio))
    return height, width


def save_image(image: ImageLike, path: str, aspect_ratio: float = 1.0) -> None:
    """Save an image as PNG, atomically, creating the parent directory.

    Args:
        image: tensor (C, H, W) / (B, C, H, W) in [-1, 1] (see :func:`tensor2im`) or a uint8
            array (H, W), (H, W, 1) or (H, W, 3).
        path: destination file; written as PNG whatever its extension.
        aspect_ratio: stretch factor, see :func:`stretched_size`; resizing is bicubic.
    """
    array = _as_uint8_rgb(image)
    height, width = array.shape[:2]
    new_height, new_width = stretched_size(height, width, aspect_ratio)
    pil_image = Image.fromarray(array)
    if (new_height, new_width) != (height, width):
        pil_image = pil_image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    with atomic_path(path) as tmp:
        pil_image.save(tmp, format="PNG")
