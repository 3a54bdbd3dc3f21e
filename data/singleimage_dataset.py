"""One photo and one painting: ``<dataroot>/trainA`` and ``<dataroot>/trainB`` hold exactly one image each.

Training (``--preprocess zoom_and_patch``, the default of ``--model sinsc``): every sample is a
``--crop_size`` patch of each image. Per (global) minibatch, each image is zoomed by a factor per
axis drawn from [1 / ``--random_scale_max``, 1] (never below the crop), cut into a grid of
crop-sized cells at a random offset, and the batch takes the cells in a shuffled order, so the
patches of one batch share one zoom and do not overlap while there are enough cells. Each patch
is flipped horizontally at random (unless ``--no_flip``); ``--augment`` adds colour-jittered copies.
An epoch has 100,000 patches; ``--max_dataset_size`` shortens it.

Testing (or any other ``--preprocess``): the whole images, one sample, through the usual transforms.
"""

import argparse
import os
from typing import Any

import torch
import torch.nn.functional as F

from data.base_dataset import BaseDataset, mix_seed
from data.image_folder import load_image, make_dataset
from data.transforms import ZOOM_AND_PATCH, color_jitter, to_tensor
from util.errors import UserError

CROPS_PER_EPOCH = 100_000


def single_image_path(folder: str, option: str = "--dataroot") -> str:
    """The one image in ``folder``; UserError when the folder is missing, empty or holds several."""
    paths = make_dataset(folder, option=option)
    if len(paths) != 1:
        names = ", ".join(os.path.basename(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise UserError(
            f"{option}: {folder} holds {len(paths)} images ({names}); the singleimage dataset "
            "needs exactly one image in trainA and one in trainB"
        )
    return paths[0]


def draw_zoom_and_grid(
    image_size: tuple[int, int], crop_size: int, random_scale_max: float, generator: torch.Generator
) -> dict[str, Any]:
    """Zoomed size, grid offset and shuffled cell order for one image and one minibatch.

    image_size: (height, width). Each axis is scaled by a factor drawn uniformly from
    [1 / random_scale_max, 1], rounded, and kept >= crop_size. Returns ``size`` (zoomed
    (height, width)), ``offset`` (top, left) of the grid, ``grid`` (rows, cols) of crop-sized cells
    and ``order``, a random permutation of the rows·cols cells (cell c is at row c // cols, col c % cols).
    """
    low = 1.0 / random_scale_max
    factors = low + (1.0 - low) * torch.rand(2, generator=generator)  # (height factor, width factor)
    size = tuple(max(crop_size, round(side * float(f))) for side, f in zip(image_size, factors))
    grid = (size[0] // crop_size, size[1] // crop_size)
    offset = tuple(
        int(torch.randint(0, side - cells * crop_size + 1, (1,), generator=generator))
        for side, cells in zip(size, grid)
    )
    order = torch.randperm(grid[0] * grid[1], generator=generator)
    return {"size": size, "offset": offset, "grid": grid, "order": order}


def cut_patch(zoomed: torch.Tensor, plan: dict[str, Any], slot: int, crop_size: int) -> torch.Tensor:
    """The crop for position ``slot`` of a minibatch: cell ``order[slot % cells]`` of the plan's grid.

    zoomed: (C, H, W) image at ``plan['size']``; returns (C, crop_size, crop_size).
    """
    rows, cols = plan["grid"]
    cell = int(plan["order"][slot % (rows * cols)])
    top = plan["offset"][0] + (cell // cols) * crop_size
    left = plan["offset"][1] + (cell % cols) * crop_size
    return zoomed[:, top : top + crop_size, left : left + crop_size]


class SingleImageDataset(BaseDataset):
    """Patches of one source image (``'A'``) and one target image (``'B'``).

    Items: ``'A'`` (input_nc, S, S) and ``'B'`` (output_nc, S, S) in [-1, 1] with S = ``--crop_size``
    (the whole images when not training with zoom_and_patch), ``'A_paths'``, ``'B_paths'``, and with
    ``--augment`` ``'A_aug'`` / ``'B_aug'`` (colour-jittered, spatially aligned copies).
    """

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Take samples in order: a batch must be a run of consecutive indices to share one zoom.

        The patches are random anyway, so nothing is lost by not shuffling.
        """
        parser.set_defaults(serial_batches=True)
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        """Find and load both images (swapped for ``--direction BtoA``); check the zoom options."""
        super().__init__(opt)
        source, target = ("B", "A") if opt.direction == "BtoA" else ("A", "B")
        self.A_path = single_image_path(os.path.join(opt.dataroot, "train" + source))
        self.B_path = single_image_path(os.path.join(opt.dataroot, "train" + target))
        self.channels_A: int = opt.input_nc
        self.channels_B: int = opt.output_nc
        self.A_img = load_image(self.A_path, self.channels_A)
        self.B_img = load_image(self.B_path, self.channels_B)
        self.augment = bool(opt.augment)
        self.zoom_and_patch = opt.preprocess == ZOOM_AND_PATCH
        self.is_train = bool(opt.is_train)
        if self.zoom_and_patch:
            self._init_zoom(opt)
        else:
            self.init_preprocess(opt)

    def _init_zoom(self, opt: argparse.Namespace) -> None:
        if opt.random_scale_max < 1.0:
            raise UserError(f"--random_scale_max {opt.random_scale_max}: must be at least 1 (the largest zoom-out)")
        if opt.crop_size < 1:
            raise UserError(f"--crop_size {opt.crop_size}: must be positive")
        self.crop_size: int = opt.crop_size
        self.random_scale_max = float(opt.random_scale_max)
        self.no_flip = bool(opt.no_flip)
        # torchrun's ranks each take every WORLD_SIZE-th index, so one step's global batch spans
        # batch_size * WORLD_SIZE consecutive indices.
        self.global_batch = int(opt.batch_size) * int(os.environ.get("WORLD_SIZE", "1"))
        self.images = {"A": to_tensor(self.A_img), "B": to_tensor(self.B_img)}  # (C, H, W) in [-1, 1]
        self._zoomed: dict[tuple, torch.Tensor] = {}

    def __len__(self) -> int:
        """CROPS_PER_EPOCH patches when training, else 1 (the whole pair)."""
        return CROPS_PER_EPOCH if self.is_train else 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index`` of the current epoch; see the class docstring for the keys."""
        generator = self.sample_generator(index)
        if self.zoom_and_patch:
            A, B = self._patches(index, generator)
        else:
            A = self.apply_transform(self.A_img, self.channels_A, self.draw_params(self.A_img.size, generator))
            B = self.apply_transform(self.B_img, self.channels_B, self.draw_params(self.B_img.size, generator))
        item = {"A": A, "B": B, "A_paths": self.A_path, "B_paths": self.B_path}
        if self.augment:
            item["A_aug"] = color_jitter(A, generator)
            item["B_aug"] = color_jitter(B, generator)
        return item

    def _patches(self, index: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The (C, S, S) patches of A and B at ``index``: batch-shared zoom and grid, own cell and flip."""
        batch, slot = divmod(index, self.global_batch)
        batch_generator = torch.Generator().manual_seed(mix_seed("zoom", self.seed, self.epoch, batch))
        patches = []
        for key in ("A", "B"):
            image = self.images[key]
            plan = draw_zoom_and_grid(tuple(image.shape[-2:]), self.crop_size, self.random_scale_max, batch_generator)
            patch = cut_patch(self._zoom(key, image, plan["size"]), plan, slot, self.crop_size)
            flip = bool(torch.rand(1, generator=generator) < 0.5) and not self.no_flip
            patches.append(patch.flip(-1) if flip else patch.clone())
        return patches[0], patches[1]

    def _zoom(self, key: str, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``image`` (C, H, W) resized to ``size`` (bilinear, antialiased); the last result per image is kept."""
        cache_key = (key, size)
        if cache_key not in self._zoomed:
            zoomed = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
            self._zoomed = {k: v for k, v in self._zoomed.items() if k[0] != key}
            self._zoomed[cache_key] = zoomed.clamp(-1.0, 1.0)
        return self._zoomed[cache_key]
