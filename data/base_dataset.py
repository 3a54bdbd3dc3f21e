"""The base class every dataset mode derives from.

A dataset mode ``foo`` lives in ``data/foo_dataset.py`` as ``class FooDataset(BaseDataset)``; see
``data/template_dataset.py`` for a documented example.

Reproducibility: ``__getitem__`` must draw every random choice from ``self.sample_generator(index)``,
a generator seeded from (``--seed``, epoch, index). A sample is then the same in every run, in every
DataLoader worker and after a resume, and never touches the global random state.
"""

import argparse
import hashlib
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.utils.data
from PIL import Image

from data.transforms import check_sizes, get_params, get_transform


def mix_seed(*parts: object) -> int:
    """A well-mixed 63-bit seed from ``parts`` (e.g. seed, epoch, index); stable across processes and runs.

    Unlike ``hash()`` it does not depend on PYTHONHASHSEED, and nearby inputs give unrelated seeds.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class BaseDataset(torch.utils.data.Dataset, ABC):
    """Map-style dataset that knows its options, its root folder and the current epoch.

    Subclasses implement ``__len__`` and ``__getitem__`` (returning a dict of tensors and paths)
    and may add flags in ``modify_commandline_options``.
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        """Store ``opt`` and ``opt.dataroot``; the epoch starts at 0 (see :meth:`set_epoch`)."""
        super().__init__()
        self.opt = opt
        self.root: str = opt.dataroot
        self.seed: int = int(opt.seed)
        self.epoch = 0

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add dataset-specific flags or change defaults; returns ``parser``."""
        return parser

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that, with ``--seed`` and the index, seeds each sample's randomness."""
        self.epoch = int(epoch)

    def sample_generator(self, index: int) -> torch.Generator:
        """A fresh CPU generator seeded from (seed, epoch, index): the only RNG ``__getitem__`` uses."""
        return torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, index))

    def init_preprocess(self, opt: argparse.Namespace) -> None:
        """Read the preprocessing flags (call from a subclass ``__init__``); checks that the crop fits."""
        check_sizes(opt.preprocess, opt.load_size, opt.crop_size)
        self.preprocess: str = opt.preprocess
        self.load_size: int = opt.load_size
        self.crop_size: int = opt.crop_size
        self.no_flip: bool = bool(opt.no_flip)

    def draw_params(self, size: tuple[int, int], generator: torch.Generator) -> dict[str, Any]:
        """Random crop position and flip for an image of ``size`` (width, height)."""
        return get_params(self.preprocess, self.load_size, self.crop_size, size, generator)

    def apply_transform(self, img: Image.Image, channels: int, params: dict[str, Any]) -> torch.Tensor:
        """Resize / crop / flip ``img`` with ``params``; returns (channels, H, W) in [-1, 1]."""
        transform = get_transform(
            preprocess=self.preprocess,
            load_size=self.load_size,
            crop_size=self.crop_size,
            channels=channels,
            params=params,
            no_flip=self.no_flip,
        )
        return transform(img)

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples in one epoch."""

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample: a dict of (C, H, W) tensors in [-1, 1] and their source paths."""
