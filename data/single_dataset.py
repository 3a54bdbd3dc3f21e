"""One folder of source images, for translating a folder that has no B side.

``--dataroot`` itself is used when it directly holds images; otherwise ``<dataroot>/<phase>A``
(``<phase>B`` with ``--direction BtoA``), so a CycleGAN-layout dataset works too; failing both,
the images in ``--dataroot``'s subfolders.
"""

import argparse
import os
from typing import Any

from data.base_dataset import BaseDataset
from data.image_folder import has_images, load_image, make_dataset
from data.transforms import color_jitter
from util.errors import UserError


def single_folder(dataroot: str, phase: str, direction: str) -> str:
    """The folder the single dataset reads.

    ``dataroot`` if it directly holds images, else ``<dataroot>/<phase>A`` (``B`` for BtoA) if that
    exists, else ``dataroot`` when it holds images in some subfolder.
    """
    if has_images(dataroot):
        return dataroot
    if not os.path.isdir(dataroot):
        raise UserError(f"--dataroot: {dataroot} does not exist")
    subfolder = os.path.join(dataroot, phase + ("B" if direction == "BtoA" else "A"))
    if os.path.isdir(subfolder):
        return subfolder
    try:
        make_dataset(dataroot, max_size=1)
    except UserError:
        raise UserError(f"--dataroot: {dataroot} holds no images and {subfolder} does not exist") from None
    return dataroot


class SingleDataset(BaseDataset):
    """Source images only.

    Each item holds ``'A'``: (input_nc, H, W) in [-1, 1] and ``'A_paths'``; with ``--augment``
    also ``'A_aug'``, a colour-jittered copy of ``'A'`` (same crop and flip).
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        """Pick the folder (see :func:`single_folder`) and check the preprocessing sizes."""
        super().__init__(opt)
        self.init_preprocess(opt)
        self.dir_A = single_folder(opt.dataroot, opt.phase, opt.direction)
        self.A_paths = make_dataset(self.dir_A, opt.max_dataset_size)
        self.channels_A: int = opt.input_nc
        self.augment = bool(opt.augment)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.A_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index``, transformed; see the class docstring for the keys."""
        generator = self.sample_generator(index)
        path = self.A_paths[index]
        img = load_image(path, self.channels_A)
        A = self.apply_transform(img, self.channels_A, self.draw_params(img.size, generator))
        item = {"A": A, "A_paths": path}
        if self.augment:
            item["A_aug"] = color_jitter(A, generator)
        return item
