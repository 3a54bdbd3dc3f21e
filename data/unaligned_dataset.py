"""Unpaired data: ``<dataroot>/<phase>A`` and ``<dataroot>/<phase>B``.

The returned ``'A'`` is always the source domain of the translation and ``'B'`` the target: with
``--direction BtoA`` the folders swap roles (``'A'`` comes from ``<phase>B``). ``'A'`` has
``--input_nc`` channels and ``'B'`` ``--output_nc``.
"""

import argparse
import os
from typing import Any

import torch

from data.base_dataset import BaseDataset
from data.image_folder import load_image, make_dataset
from data.transforms import color_jitter


class UnalignedDataset(BaseDataset):
    """Images from two folders with no pairing; B is drawn at random unless ``--serial_batches``.

    Length is max(|A|, |B|) for training and |A| for testing (test.py translates each source image
    once, however many B images there are). Each item holds
    ``'A'``: (input_nc, H, W) in [-1, 1], ``'B'``: (output_nc, H', W') in [-1, 1],
    ``'A_paths'``, ``'B_paths'``: the source files, and with ``--augment`` also
    ``'A_aug'`` / ``'B_aug'``: colour-jittered copies of ``'A'`` / ``'B'`` (same crop and flip,
    so spatially aligned with them).
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        """Find both folders (swapped for ``--direction BtoA``) and check the preprocessing sizes."""
        super().__init__(opt)
        self.init_preprocess(opt)
        source, target = ("B", "A") if opt.direction == "BtoA" else ("A", "B")
        self.dir_A = os.path.join(opt.dataroot, opt.phase + source)
        self.dir_B = os.path.join(opt.dataroot, opt.phase + target)
        self.A_paths = make_dataset(self.dir_A, opt.max_dataset_size)
        self.B_paths = make_dataset(self.dir_B, opt.max_dataset_size)
        self.channels_A: int = opt.input_nc
        self.channels_B: int = opt.output_nc
        self.serial_batches = bool(opt.serial_batches)
        self.augment = bool(opt.augment)
        self.source_only = not opt.is_train

    def __len__(self) -> int:
        """Training: max(|A|, |B|), every image of the larger folder once per epoch; testing: |A|."""
        return len(self.A_paths) if self.source_only else max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index`` of the current epoch; see the class docstring for the keys."""
        generator = self.sample_generator(index)
        A_path = self.A_paths[index % len(self.A_paths)]
        if self.serial_batches:
            B_index = index % len(self.B_paths)
        else:
            B_index = int(torch.randint(len(self.B_paths), (1,), generator=generator))
        B_path = self.B_paths[B_index]
        A_img = load_image(A_path, self.channels_A)
        B_img = load_image(B_path, self.channels_B)
        # A and B get independent crops and flips, as in CycleGAN.
        A = self.apply_transform(A_img, self.channels_A, self.draw_params(A_img.size, generator))
        B = self.apply_transform(B_img, self.channels_B, self.draw_params(B_img.size, generator))
        item = {"A": A, "B": B, "A_paths": A_path, "B_paths": B_path}
        if self.augment:
            item["A_aug"] = color_jitter(A, generator)
            item["B_aug"] = color_jitter(B, generator)
        return item
