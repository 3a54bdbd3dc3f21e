"""Dataset modes, found by name, and the loader that batches them.

``--dataset_mode foo`` imports ``data/foo_dataset.py`` and uses its ``FooDataset(BaseDataset)``.
:func:`create_dataset` wraps the dataset in a :class:`DatasetLoader` whose sample order is a pure
function of (``--seed``, epoch), so training is reproducible and can resume mid-epoch.
"""

import argparse
import importlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.utils.data
from torch.utils.data import Sampler, default_collate

from data.base_dataset import BaseDataset, mix_seed
from util.dist import device_for
from util.errors import UserError, worker_message

_NOT_MODES = ("base",)  # *_dataset.py files that are not dataset modes
_TEMPLATE = "template"  # importable example, but not offered to users


def _dataset_files() -> list[str]:
    """Names ``x`` of every ``data/x_dataset.py`` that defines a mode (template included)."""
    folder = os.path.dirname(os.path.abspath(__file__))
    names = [f[: -len("_dataset.py")] for f in os.listdir(folder) if f.endswith("_dataset.py")]
    return sorted(name for name in names if name and name not in _NOT_MODES)


def available_dataset_modes() -> list[str]:
    """Sorted names usable as ``--dataset_mode`` (every ``data/*_dataset.py`` but base and template)."""
    return [name for name in _dataset_files() if name != _TEMPLATE]


def find_dataset_using_name(name: str) -> type[BaseDataset]:
    """The class in ``data/<name>_dataset.py`` named like ``<name without _>dataset`` (any case).

    Raises UserError listing the available modes when there is no such file.
    """
    if name not in _dataset_files():
        choices = ", ".join(available_dataset_modes())
        raise UserError(f"--dataset_mode: unknown mode '{name}'; choose from {choices}")
    module = importlib.import_module(f"{__name__}.{name}_dataset")
    target = name.replace("_", "") + "dataset"
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, BaseDataset) and obj.__name__.lower() == target:
            return obj
    raise TypeError(f"data/{name}_dataset.py defines no BaseDataset subclass named '{target}' (any case)")


def get_option_setter(name: str) -> Callable[[argparse.ArgumentParser, bool], argparse.ArgumentParser]:
    """The static ``modify_commandline_options(parser, is_train)`` of dataset mode ``name``."""
    return find_dataset_using_name(name).modify_commandline_options


class EpochSampler(Sampler[int]):
    """Sample order for one epoch: sequential, or a permutation seeded from (seed, epoch).

    Takes the first ``num_samples`` of the order over ``dataset_size`` items, pads it (by
    wrapping) to a multiple of ``world_size`` so every rank gets as many samples, and gives rank
    ``rank`` the slice ``order[rank::world_size]``. :meth:`set_epoch` can make the next pass start
    ``start_index`` samples in (to resume mid-epoch); later passes start at 0 again.
    """

    def __init__(
        self, *, dataset_size: int, num_samples: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        """See the class docstring; ``num_samples`` <= ``dataset_size``."""
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.dataset_size = dataset_size
        self.num_samples = min(num_samples, dataset_size)
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._next_start = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Use epoch ``epoch``'s order; the next pass skips its first ``start_index`` samples."""
        self.epoch = int(epoch)
        self._next_start = int(start_index)

    def epoch_indices(self) -> list[int]:
        """This rank's dataset indices for the whole current epoch."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed("order", self.seed, self.epoch))
            order = torch.randperm(self.dataset_size, generator=generator)[: self.num_samples].tolist()
        else:
            order = list(range(self.num_samples))
        padded = math.ceil(len(order) / self.world_size) * self.world_size
        order += order[: padded - len(order)]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        """Indices of this pass (not a generator: the start is consumed when the pass begins)."""
        start, self._next_start = self._next_start, 0
        return iter(self.epoch_indices()[start:])

    def __len__(self) -> int:
        """Samples per full epoch on this rank."""
        return math.ceil(self.num_samples / self.world_size)


class _EpochTaggedSampler(Sampler[tuple[int, int]]):
    """An :class:`EpochSampler`'s indices as (epoch, index) pairs, the epoch taken when a pass begins."""

    def __init__(self, sampler: EpochSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, epoch = iter(self.sampler), self.sampler.epoch
        return ((epoch, index) for index in indices)

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochTaggedDataset(torch.utils.data.Dataset):
    """``dataset`` indexed by (epoch, index): each item first sets its epoch on the dataset it runs on.

    A DataLoader worker holds its own copy of the dataset, which the main process's ``set_epoch``
    never reaches, and persistent workers keep that copy from one epoch to the next; the epoch
    therefore travels with every index, so workers draw exactly what the main process would.
    """

    def __init__(self, dataset: BaseDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def _shape_text(shape: torch.Size) -> str:
    return "x".join(str(s) for s in shape)


def collate_batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch dict (tensors -> (B, C, H, W), paths -> lists of str).

    Raises UserError when the images of one key differ in size (e.g. ``--preprocess none``).
    """
    for key, value in samples[0].items():
        if isinstance(value, torch.Tensor):
            shapes = sorted({tuple(s[key].shape) for s in samples})
            if len(shapes) > 1:
                sizes = ", ".join(_shape_text(torch.Size(shape)) for shape in shapes)
                raise UserError(
                    f"images in one batch differ in size ({sizes}); use --batch_size 1 with --preprocess none"
                )
    return default_collate(samples)


class DatasetLoader:
    """Batches a dataset in a reproducible order; iterate it to get batch dicts.

    Order: sequential when ``shuffle`` is False, else a permutation seeded from (seed, epoch).
    Each sample's own randomness is seeded from (seed, epoch, index) by the dataset, so neither
    depends on ``num_workers``, and the global RNGs are never touched.

    Speed: with ``num_workers`` > 0 the worker processes persist from one epoch to the next (the
    epoch travels with each index, see :class:`_EpochTaggedDataset`); for a CUDA ``device`` batches
    come in pinned (page-locked) memory, so ``.to(device, non_blocking=True)`` copies them while
    the GPU computes.
    """

    def __init__(
        self,
        dataset: BaseDataset,
        *,
        batch_size: int,
        num_workers: int,
        shuffle: bool,
        seed: int,
        max_dataset_size: float = math.inf,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        """Wrap ``dataset``; at most ``max_dataset_size`` samples per epoch (split over ``world_size`` ranks);
        ``device``: where the batches go (default: the CPU); ``extras``: entries added to every batch
        as they are (an mmsc model's style references, say)."""
        if batch_size < 1:
            raise UserError(f"--batch_size {batch_size}: must be at least 1")
        if num_workers < 0:
            raise UserError(f"--num_threads {num_workers}: must be 0 or more")
        self.dataset = dataset
        self.batch_size = batch_size
        self.extras = dict(extras or {})
        num_samples = int(min(len(dataset), max_dataset_size))
        self.sampler = EpochSampler(
            dataset_size=len(dataset),
            num_samples=num_samples,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
        # A private generator: otherwise each new iterator draws its worker base seed from the
        # global torch RNG, which would make training depend on when the loader is iterated.
        loader_generator = torch.Generator().manual_seed(mix_seed("loader", seed))
        self.loader = torch.utils.data.DataLoader(
            _EpochTaggedDataset(dataset),
            batch_size=batch_size,
            sampler=_EpochTaggedSampler(self.sampler),
            num_workers=num_workers,
            collate_fn=collate_batch,
            drop_last=False,
            pin_memory=device is not None and torch.device(device).type == "cuda",
            persistent_workers=num_workers > 0,
            generator=loader_generator,
        )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Set the epoch (sample order and per-sample randomness); the next pass starts at ``start_batch``."""
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start_batch * self.batch_size)

    def __len__(self) -> int:
        """Samples per epoch (on this rank)."""
        return len(self.sampler)

    @property
    def num_batches(self) -> int:
        """Batches per full epoch (on this rank); the last one may be smaller."""
        return math.ceil(len(self) / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield batch dicts; a UserError raised in a worker comes out as a one-line UserError."""
        try:
            for batch in self.loader:
                yield batch | self.extras if self.extras else batch
        except UserError as exc:
            raise UserError(worker_message(exc)) from None


def create_dataset(
    opt: argparse.Namespace, rank: int = 0, world_size: int = 1, extras: dict[str, Any] | None = None
) -> DatasetLoader:
    """Build the ``--dataset_mode`` dataset and its loader from the options; ``extras``: entries every batch
    carries besides its samples (what the model asks for: ``models.batch_extras(opt)``).

    Shuffles (reproducibly) when training without ``--serial_batches``; with ``world_size`` > 1
    each rank gets every ``world_size``-th sample of the order, starting at ``rank``.
    """
    dataset = find_dataset_using_name(opt.dataset_mode)(opt)
    return DatasetLoader(
        dataset,
        batch_size=opt.batch_size,
        num_workers=opt.num_threads,
        shuffle=bool(opt.is_train and not opt.serial_batches),
        seed=int(opt.seed),
        max_dataset_size=opt.max_dataset_size,
        rank=rank,
        world_size=world_size,
        device=device_for(opt.gpu_ids),
        extras=extras,
    )
