"""What using a trained generator needs to know about it, declared by the generator itself.

The inference package (inference/: the translator, tiling, ONNX export) never recognises a network by its
class or its name; it reads the ``inference`` attribute, an :class:`InferenceTraits`, that every module it
translates with sets in its constructor. A module without one is refused with a message naming it.
docs/adding_a_model.md says what a new generator declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from models.networks.layers import pad2d

TILING = ("layers", "forward")


@dataclass(frozen=True)
class InferenceTraits:
    """A generator's declaration for the inference tools.

    size_multiple: the forward pass pads the input's sides to multiples of this (:func:`pad_to_multiple`)
        and crops the output back; tiles start at multiples of it.
    tiling: how the tiles of one image can share its normalisation:
        'layers' - ``getattr(net, layers)`` is an nn.Sequential (encoder, a middle at 1/size_multiple of the
        size, decoder) whose only image-wide normalisations are ``nn.InstanceNorm2d`` layers: tiling gives
        them the whole image's statistics (inference/streaming.py runs it stage by stage; a module in it
        that holds norms is an nn.Sequential or a residual block declaring ``residual_branch``, the name of
        its branch, its forward being ``x + branch(x)``);
        'forward' - nothing normalises over the image: tiles run through ``forward`` and are blended;
        None - tiles cannot share it (``untileable`` says why): whole images only.
    noise: ``forward`` draws random noise; the module then has ``set_noise(enabled) -> previous setting``.
    style_dim: ``forward(image, style)`` takes style codes (N, style_dim, 1, 1) as a second input, and the
        module has ``style_codes(count, seed)`` drawing them as the model does at test time.
    """

    size_multiple: int
    tiling: Optional[str]
    layers: str = "model"
    untileable: str = ""
    noise: bool = False
    style_dim: Optional[int] = None

    def __post_init__(self) -> None:
        if self.tiling not in (*TILING, None):
            raise ValueError(f"tiling {self.tiling!r}: use one of {', '.join(TILING)} or None")
        if self.tiling is None and not self.untileable:
            raise ValueError("tiling None: say why in untileable")
        if self.size_multiple < 1:
            raise ValueError(f"size_multiple {self.size_multiple}: must be at least 1")


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right so H and W become multiples of ``multiple`` (and >= min_size).

    Reflection padding where the pad is smaller than the side (it mirrors real content), replicate
    padding otherwise (reflection is undefined there). Crop ``[..., :H, :W]`` to undo. While traced for
    ONNX export the amounts are computed from the traced shape and always reflected, so one graph pads
    every size (sides of at least ``min_size``; a Python decision would be frozen into the trace).
    """
    if torch.jit.is_tracing():
        height, width = x.shape[2], x.shape[3]
        return F.pad(
            x,
            [0, (multiple - width % multiple) % multiple, 0, (multiple - height % multiple) % multiple],
            mode="reflect",
        )
    height, width = x.shape[-2:]
    for dim, size in ((-1, width), (-2, height)):
        target = max(-(-size // multiple) * multiple, -(-min_size // multiple) * multiple)
        amount = target - size
        if amount == 0:
            continue
        pad = (0, amount, 0, 0) if dim == -1 else (0, 0, 0, amount)
        x = pad2d(x, pad, "reflect" if amount < size else "replicate")
    return x
