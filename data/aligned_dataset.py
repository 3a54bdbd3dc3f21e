"""Paired data: ``<dataroot>/<phase>`` holds images with A on the left half and B on the right.

Both halves get the same resize, crop and flip, so they stay pixel-aligned. With
``--direction BtoA`` the halves swap roles: ``'A'`` (the source, ``--input_nc`` channels) is then
the right half.
"""

import argparse
import os
from typing import Any

from data.base_dataset import BaseDataset
from data.image_folder import load_image, make_dataset
from data.transforms import color_jitter
from util.errors import UserError


class AlignedDataset(BaseDataset):
    """Side-by-side A|B images (pix2pix layout).

    Each item holds ``'A'``: (input_nc, H, W) and ``'B'``: (output_nc, H, W) in [-1, 1], cropped
    identically; ``'A_paths'`` / ``'B_paths'``: the file both halves came from; with
    ``--augment`` also ``'A_aug'`` / ``'B_aug'`` (colour-jittered, spatially aligned copies).
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        """List ``<dataroot>/<phase>`` and check the preprocessing sizes."""
        super().__init__(opt)
        self.init_preprocess(opt)
        self.dir_AB = os.path.join(opt.dataroot, opt.phase)
        self.AB_paths = make_dataset(self.dir_AB, opt.max_dataset_size)
        self.swap = opt.direction == "BtoA"
        self.channels_A: int = opt.input_nc
        self.channels_B: int = opt.output_nc
        self.augment = bool(opt.augment)

    def __len__(self) -> int:
        """Number of A|B images."""
        return len(self.AB_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Split image ``index`` in half and transform both halves with the same parameters."""
        generator = self.sample_generator(index)
        path = self.AB_paths[index]
        channels = 3 if 3 in (self.channels_A, self.channels_B) else 1
        AB = load_image(path, channels)
        width, height = AB.size
        half = width // 2
        if half == 0:
            raise UserError(f"--dataset_mode aligned: image {path} is {width} px wide, too narrow to split into A|B")
        left, right = AB.crop((0, 0, half, height)), AB.crop((half, 0, 2 * half, height))
        A_img, B_img = (right, left) if self.swap else (left, right)
        params = self.draw_params(A_img.size, generator)
        A = self.apply_transform(A_img, self.channels_A, params)
        B = self.apply_transform(B_img, self.channels_B, params)
        item = {"A": A, "B": B, "A_paths": path, "B_paths": path}
        if self.augment:
            item["A_aug"] = color_jitter(A, generator)
            item["B_aug"] = color_jitter(B, generator)
        return item
