"""Reading what a network declares for inference (models/networks/traits.py), and acting on it."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

from models.networks.traits import InferenceTraits
from util.errors import UserError


def traits_of(net: nn.Module, name: str, use: str) -> InferenceTraits:
    """``net``'s declared :class:`InferenceTraits`; a UserError naming the network (``name``) and what it was
    needed for (``use``: 'tiled', 'exported') when it declares none."""
    traits = getattr(net, "inference", None)
    if not isinstance(traits, InferenceTraits):
        raise UserError(
            f"{name} declares no inference traits (an 'inference' attribute, an InferenceTraits: see "
            f"docs/adding_a_model.md), so it cannot be {use}"
        )
    return traits


@contextlib.contextmanager
def noise_disabled(net: nn.Module, name: str = "the generator") -> Iterator[None]:
    """Within the block ``net`` draws no noise (when it declares noise), restored on exit."""
    if not traits_of(net, name, "run without noise").noise:
        yield
        return
    previous = net.set_noise(False)
    try:
        yield
    finally:
        net.set_noise(previous)
