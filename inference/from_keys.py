"""The architecture options of a generator state_dict, read from its keys and shapes.

A published generator file (``latest_net_G.pth`` of CycleGAN's pretrained downloads, of CUT, FastCUT or
F-LSeSim) comes without its options. Its tensors say them: the ResNet generator's first conv is
``model.1.weight`` (ngf, input_nc, 7, 7); its residual blocks are the ``model.<i>.conv_block`` indices (9 or 6);
anti-aliased down- and upsampling layers keep fixed blur kernels ``model.<i>.filt`` of side 3 and 4; instance
norm gives the convs a bias, batch norm has ``running_mean`` buffers. A StyleGAN2 generator (sinsc) starts with
``encoder.convs.1.0.weight`` (4 ngf, input_nc, 1, 1).
"""

from __future__ import annotations

import re

import torch


def generator_options(state: dict[str, torch.Tensor]) -> dict:
    """The options (``--netG``, ``--ngf``, ``--input_nc``, ``--output_nc``, ``--normG``, ``--no_antialias``,
    ``--no_antialias_up``) that build a generator with the keys and shapes of ``state``; {} when the
    layout is not one of this framework's generators."""
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
    if "model.1.weight" in state and state["model.1.weight"].dim() == 4:
        return _resnet_options(state)
    first = state.get("encoder.convs.1.0.weight")
    if first is not None and first.dim() == 4:
        last = [v for k, v in state.items() if k.startswith("decoder.") and k.endswith("weight") and v.dim() == 4]
        output_nc = last[-1].shape[0] if last else 3
        return {"netG": "stylegan2", "ngf": first.shape[0] // 4, "input_nc": first.shape[1], "output_nc": output_nc}
    return {}


def _resnet_options(state: dict[str, torch.Tensor]) -> dict:
    """See :func:`generator_options`, for ``ResnetGenerator`` keys."""
    first = state["model.1.weight"]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    indices = [int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.weight$", k))]
    last = state[f"model.{max(indices)}.weight"]
    filters = {v.shape[-1] for k, v in state.items() if k.endswith(".filt") and v.dim() == 4}
    if len(blocks) not in (6, 9):
        return {}
    norm = "batch" if "model.2.running_mean" in state else "instance" if "model.1.bias" in state else "none"
    return {
        "netG": f"resnet_{len(blocks)}blocks",
        "ngf": first.shape[0],
        "input_nc": first.shape[1],
        "output_nc": last.shape[0],
        "normG": norm,
        "no_antialias": 3 not in filters,
        "no_antialias_up": 4 not in filters,
    }
