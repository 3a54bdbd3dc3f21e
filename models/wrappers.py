"""The wrappers a model's networks may get in ``BaseModel.setup``: ``--compile`` and, under torchrun, DDP.

A wrapped network is called as before; :func:`unwrap` reaches the plain network inside (its
attributes and state_dict, which is what checkpoints hold).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


class CompiledOrEager(nn.Module):
    """``torch.compile(module)`` that falls back to the eager ``module``, with one warning, if compiling fails.

    torch.compile fails late: the forward compiles at the first call, the backward at the first
    backward, and again for each new input shape or gradient pattern (CPU needs a C++ compiler;
    some platforms, Python versions and operators are unsupported). So the first call of each kind
    runs as a probe on detached inputs, forward and (when gradients are on) backward, before the
    compiled network is trusted. ``self.module`` is the plain network (state_dict keys unchanged).
    """

    def __init__(self, module: nn.Module, name: str) -> None:
        super().__init__()
        self.module = module
        self.name = name
        self.failed = False
        self.probed: set[tuple] = set()
        try:
            compiled: Optional[Callable] = torch.compile(module)
        except Exception as exc:  # unsupported platform or Python
            compiled = None
            self._fall_back(exc)
        object.__setattr__(self, "_compiled", compiled)  # not a submodule: no duplicate parameters

    def _fall_back(self, exc: Exception) -> None:
        self.failed = True
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        warnings.warn(
            f"--compile: torch.compile of net_{self.name} failed ({type(exc).__name__}: {reason}); running it eagerly",
            stacklevel=3,
        )

    def _probe(self, args: tuple) -> None:
        """Compile forward and backward for this kind of call on detached copies; fall back on any error."""
        inputs = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
        try:
            out = self._compiled(*inputs)
            leaves = [
                t for t in [*inputs, *self.module.parameters()] if isinstance(t, torch.Tensor) and t.requires_grad
            ]
            outs = [out] if isinstance(out, torch.Tensor) else list(out)
            if torch.is_grad_enabled() and leaves:
                torch.autograd.grad(sum(o.float().sum() for o in outs), leaves, allow_unused=True)
        except Exception as exc:  # compiler errors have many types; a genuine error re-raises eagerly
            self._fall_back(exc)

    def forward(self, *args: Any) -> Any:
        if not self.failed:
            kind = (
                tuple((tuple(a.shape), a.dtype, a.requires_grad) for a in args if isinstance(a, torch.Tensor)),
                torch.is_grad_enabled(),
                any(p.requires_grad for p in self.module.parameters()),
            )
            if kind not in self.probed:
                self._probe(args)
                self.probed.add(kind)
        return self.module(*args) if self.failed else self._compiled(*args)


def unwrap(net: nn.Module) -> nn.Module:
    """The plain network inside DDP / :class:`CompiledOrEager` wrappers (what is saved and loaded)."""
    while isinstance(net, (DistributedDataParallel, CompiledOrEager)):
        net = net.module
    return net


def compiled(net: nn.Module, name: str) -> nn.Module:
    """``net`` under ``--compile``: a :class:`CompiledOrEager` (``net`` itself when it already is one)."""
    return net if isinstance(net, CompiledOrEager) else CompiledOrEager(net, name)


def distributed(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` wrapped in DDP for torchrun (``net`` itself when it already is)."""
    if isinstance(net, DistributedDataParallel):
        return net
    device_ids = [device.index] if device.type == "cuda" else None
    # No buffer broadcast at every forward: the buffers are fixed blur kernels (equal on all ranks from
    # DDP's start-up broadcast), and a network called twice in a step (D on fakes, then reals) would see
    # the first call's saved buffer overwritten in place, which torch 2.3's autograd rejects. BatchNorm
    # running statistics stay per process.
    return DistributedDataParallel(net, device_ids=device_ids, broadcast_buffers=False)
