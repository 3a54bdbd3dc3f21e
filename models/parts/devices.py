"""Where and how the networks run: the device, ``--channels_last``, ``--amp``'s autocast, ``--compile`` and
DDP wrapping under torchrun."""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from models.parts.config import CommonConfig
from models.wrappers import compiled, distributed, unwrap
from util import dist

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def to_channels_last(net: nn.Module) -> None:
    """Store the 4-D weights and buffers of ``net`` NHWC, in place (``Module.to`` also tries 5-D ones and fails)."""
    for tensor in [*net.parameters(), *net.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


class Devices:
    """The networks' device, memory format, precision and wrappers (a part of BaseModel)."""

    common: CommonConfig
    device: torch.device
    is_train: bool
    model_names: list[str]
    compile_names: list[str]
    memory_format: torch.memory_format
    amp_dtype: torch.dtype | None

    def apply_memory_format(self) -> torch.memory_format:
        """With ``--channels_last``: store every network the model holds (each ``nn.Module`` attribute,
        the frozen VGG included) NHWC and set ``memory_format``, the format ``set_input`` gives the
        images. Call it at the end of ``__init__``, once every network is built. Returns the format."""
        if self.common.channels_last:
            for value in vars(self).values():
                if isinstance(value, nn.Module):
                    to_channels_last(value)
            self.memory_format = torch.channels_last
        return self.memory_format

    def wrap_networks(self) -> None:
        """--compile the networks in ``compile_names``; under torchrun, wrap each trained network in DDP.

        Afterwards ``self.net<name>`` may be a wrapper: call it as before, but reach the plain
        network (attributes, state_dict) through :meth:`networks`.
        """
        if self.common.compile:
            for name in self.compile_names:
                setattr(self, "net" + name, compiled(getattr(self, "net" + name), name))
        if not self.is_train or dist.get_world_size() == 1:
            return
        for name in self.model_names:
            net = getattr(self, "net" + name)
            if any(p.requires_grad for p in net.parameters()):
                setattr(self, "net" + name, distributed(net, self.device))

    def networks(self) -> dict[str, nn.Module]:
        """name -> plain network (no DDP / compile wrapper) for every name in model_names."""
        return {name: unwrap(getattr(self, "net" + name)) for name in self.model_names}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision (``--amp``) for forward passes and losses; does nothing when off."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def eval(self) -> None:
        for net in self.networks().values():
            net.eval()

    @staticmethod
    def set_requires_grad(nets: Iterable[nn.Module], requires_grad: bool) -> None:
        for net in nets:
            if net is not None:
                net.requires_grad_(requires_grad)
                if isinstance(net, DistributedDataParallel):
                    # A frozen network's forward must not arm DDP's all-reduce: no gradient would come.
                    net.require_backward_grad_sync = requires_grad
