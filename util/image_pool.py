"""History of generated images for the discriminator (Shrivastava et al. 2017, as in CycleGAN).

Showing D some older fakes stops G and D from chasing each other around the latest batch.
"""

from typing import Any

import torch

from util import dist


class ImagePool:
    """A buffer of up to ``pool_size`` generated images.

    For each image of a batch: while the pool is filling, store it and return it; once full, with
    probability 0.5 return a uniformly chosen stored image and store the new one in its place,
    otherwise return the new image. The random draws come from ``generator`` (a CPU torch.Generator;
    by default a private one seeded 0) so that ``state_dict`` / ``load_state_dict`` resume exactly.
    pool_size 0 disables the pool.
    """

    def __init__(self, pool_size: int, generator: torch.Generator | None = None) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.images: list[torch.Tensor] = []  # each (C, H, W), detached
        self._undo: list[tuple[int, torch.Tensor | None]] | None = None  # since mark(): (index, image replaced)
        self._marked_state: torch.Tensor | None = None

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, H, W) new fakes -> (B, C, H, W) detached mix of new and stored fakes.

        Stored images must have the shape of the new ones (the same crop size throughout training).
        """
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            returned.append(self._swap(image))
        return torch.stack(returned, dim=0)

    def _swap(self, image: torch.Tensor) -> torch.Tensor:
        """Store one (C, H, W) image and return it or an older one, per the rule above."""
        if len(self.images) < self.pool_size:
            if self._undo is not None:
                self._undo.append((len(self.images), None))
            self.images.append(image.clone())
            return image
        if torch.rand(1, generator=self.generator).item() > 0.5:
            index = int(torch.randint(0, self.pool_size, (1,), generator=self.generator).item())
            if self._undo is not None:
                self._undo.append((index, self.images[index]))
            old = self.images[index].to(image.device)
            self.images[index] = image.clone()
            return old
        return image

    def mark(self) -> None:
        """Remember the pool as it is now (the images and the generator), for :meth:`undo`."""
        if self.pool_size:
            self._undo = []
            self._marked_state = self.generator.get_state()

    def undo(self) -> None:
        """Return to the last :meth:`mark`: the images stored since then removed, the ones they replaced back."""
        if self._undo is None:
            return
        for index, replaced in reversed(self._undo):
            if replaced is None:
                self.images.pop()
            else:
                self.images[index] = replaced
        self._undo = []
        self.generator.set_state(self._marked_state)

    def __len__(self) -> int:
        return len(self.images)

    def state_dict(self) -> dict[str, Any]:
        """The stored images (list of (C, H, W) tensors), the pool size and the generator state."""
        return {
            "pool_size": self.pool_size,
            "images": [image.clone() for image in self.images],
            "generator_state": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; later queries then repeat the saved run exactly."""
        images = list(state["images"])
        if len(images) > self.pool_size:
            raise ValueError(f"saved pool holds {len(images)} images but pool_size is {self.pool_size}")
        self.images = [image.clone() for image in images]
        self.generator.set_state(state["generator_state"])


def query_across_ranks(pool: ImagePool, fake: torch.Tensor) -> torch.Tensor:
    """Mix (B, C, H, W) detached fakes with ``pool`` under torchrun as one process would; returns (B, C, H, W).

    Every process feeds the pool all processes' fakes in rank order (one all-gather) and keeps its
    own share of the answer, so the pools stay identical and N processes see what one process with N
    times the batch sees. In one process (or with pool_size 0) it is ``pool.query(fake)``.
    """
    if dist.get_world_size() == 1 or pool.pool_size == 0:
        return pool.query(fake)
    mixed = pool.query(dist.all_gather_batch(fake))
    return mixed.chunk(dist.get_world_size())[dist.get_rank()]
