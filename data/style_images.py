"""Reference images for example-guided translation (``--model mmsc --style_image PATH ...``).

They are read once, with the test preprocessing, and :func:`data.create_dataset`'s loader adds them to
every batch as ``'style_B'`` (K, C, H, W) in [-1, 1]; the model takes them in ``set_input``.
"""

from __future__ import annotations


import torch
from PIL import Image

from data.image_folder import convert_image, load_image
from data.transforms import get_transform
from util.errors import UserError


def load_style_images(
    paths: list[str | Image.Image], *, channels: int, preprocess: str, load_size: int, crop_size: int
) -> torch.Tensor:
    """The images at ``paths`` (file paths, or PIL images already opened) as one (K, channels, H, W) tensor in
    [-1, 1], unflipped; UserError when one is unreadable or their sizes differ after ``preprocess``."""
    transform = get_transform(
        preprocess=preprocess, load_size=load_size, crop_size=crop_size, channels=channels, params=None, no_flip=True
    )
    images = []
    for path in paths:
        try:
            image = convert_image(path, channels) if isinstance(path, Image.Image) else load_image(path, channels)
            images.append(transform(image))
        except (OSError, ValueError) as exc:
            raise UserError(f"--style_image {path}: cannot read it as an image ({exc})") from None
    if len({tuple(i.shape) for i in images}) > 1:
        raise UserError(
            "--style_image: the images have different sizes after --preprocess "
            f"{preprocess}; use --preprocess resize_and_crop or images of one size"
        )
    return torch.stack(images)
