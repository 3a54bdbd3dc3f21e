"""Weight initialisation of convolution, linear and batch-norm layers."""

from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

_WEIGHT_INITS: dict[str, Callable[[torch.Tensor, float], object]] = {
    "normal": lambda weight, gain: nn.init.normal_(weight, 0.0, gain),
    "xavier": lambda weight, gain: nn.init.xavier_normal_(weight, gain=gain),
    "kaiming": lambda weight, gain: nn.init.kaiming_normal_(weight, a=0, mode="fan_in"),
    "orthogonal": lambda weight, gain: nn.init.orthogonal_(weight, gain=gain),
}

INIT_TYPES: tuple[str, ...] = tuple(sorted(_WEIGHT_INITS))


@torch.no_grad()
def init_weights(net: nn.Module, init_type: str = "xavier", init_gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place and return it.

    Conv/ConvTranspose/Linear weights follow ``init_type`` ('normal': N(0, gain²); 'xavier': Xavier
    normal with ``gain``; 'kaiming': He normal, fan-in, gain unused; 'orthogonal' with ``gain``) and
    their biases become 0. Batch-norm weights are drawn from N(1, gain²) and their biases become 0.
    Buffers (such as the fixed blur kernels) are left alone.
    """
    if init_type not in _WEIGHT_INITS:
        raise ValueError(f"unknown init_type '{init_type}'; valid names: {', '.join(INIT_TYPES)}")
    init_weight = _WEIGHT_INITS[init_type]
    for module in net.modules():
        if isinstance(module, (_ConvNd, nn.Linear)):
            init_weight(module.weight, init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BatchNorm) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, init_gain)
            nn.init.zeros_(module.bias)
    return net
