"""ONNX graphs of trained generators that take and give images in [0, 1], and their check against PyTorch.

The graphs hold everything a user of the PyTorch model would otherwise have to repeat, and which
published ONNX exports of CycleGAN-style generators are known to get wrong:

- the input scaling: images come in as float32 RGB (or grey) in [0, 1], (N, C, H, W); the graph maps
  them to [-1, 1] with (x - 0.5) / 0.5, and maps the generator's output back with y * 0.5 + 0.5,
  clamped to [0, 1];
- any height and width of at least ``2 * multiple`` pixels (8 for the generators here): the networks'
  own padding to their declared size multiple (models/networks/traits.py, ``pad_to_multiple``) records the
  shape arithmetic while traced, so the graph pads every size and crops the output back;
- batch, height and width are dynamic axes.

What is exported is the model's :meth:`~models.base_model.BaseModel.inference_graph`: its first test
network for the one-network models (sc, cut, cycle_gan, sinsc), and for mmsc the content encoder of the source
domain with the decoder of the target domain. A module whose traits declare ``style_dim`` takes the style code
(N, style_dim, 1, 1) as a second input ``style`` (draw it from N(0, I) for random styles).

A module that declares ``noise`` (the sinsc generator's StyleGAN2 decoder adds per-pixel Gaussian noise at test
time, as in PyTorch) keeps it in the graph, drawn by ONNX's RandomNormalLike, so its output varies from run to
run exactly as PyTorch's does. :func:`check_graph` therefore compares a noise-free twin of the graph number for
number, and the noise's effect by its spread.
"""

from __future__ import annotations

import copy
import inspect
import io
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from inference.traits import noise_disabled, traits_of
from util.errors import UserError

OPSET = 17
ORT_MISSING = "onnxruntime is not installed; install it with: pip install onnxruntime"


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1], the range every generator here is trained on: (x - 0.5) / 0.5."""
    return (image - 0.5) / 0.5


def to_image_range(output: torch.Tensor) -> torch.Tensor:
    """A generator's [-1, 1] output -> [0, 1] images (clamped: the sinsc decoder's noise may overshoot)."""
    return (output * 0.5 + 0.5).clamp(0.0, 1.0)


class ExportGraph(nn.Module):
    """image (N, C, H, W) in [0, 1][, style (N, style_dim, 1, 1)] -> translated (N, C', H, W) in [0, 1] through
    ``module`` (a model's inference_graph), which pads and crops by itself. ``channels``: the image channels;
    ``name`` names the module in messages. A module that declares no traits is refused."""

    def __init__(self, module: nn.Module, channels: int, name: str = "the generator") -> None:
        super().__init__()
        self.module = module
        self.channels = channels
        self.name = name
        self.traits = traits_of(module, name, "exported")
        self.multiple = self.traits.size_multiple
        self.style_dim = self.traits.style_dim

    def forward(self, image: torch.Tensor, *style: torch.Tensor) -> torch.Tensor:
        return to_image_range(self.module(to_model_range(image), *style))


def graph_inputs(
    graph: ExportGraph, height: int = 64, width: int = 64, batch: int = 1, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Example inputs for ``graph``: ``batch`` random [0, 1] images drawn with ``seed``; for a graph with a style
    input one such image repeated ``batch`` times with the codes ``style_codes(batch, 0)`` (the mmsc model's
    ``n_styles=batch, seed=0``)."""
    generator = torch.Generator().manual_seed(seed)
    device = next(graph.parameters()).device
    if graph.style_dim is not None:
        image = torch.rand(1, graph.channels, height, width, generator=generator).expand(batch, -1, -1, -1)
        return image.contiguous().to(device), graph.module.style_codes(batch, 0).to(device)
    return (torch.rand(batch, graph.channels, height, width, generator=generator).to(device),)


def without_noise(graph: ExportGraph) -> ExportGraph:
    """A copy of ``graph`` (same weights) whose module injects no noise: the deterministic part of its computation."""
    twin = copy.deepcopy(graph)
    if twin.traits.noise:
        twin.module.set_noise(False)
    return twin


def export_graph(graph: ExportGraph, target: "str | io.BytesIO", opset: int = OPSET) -> None:
    """Write ``graph`` (eval mode, on the CPU) as ONNX to ``target`` with dynamic batch, height and width.

    Uses the TorchScript-based exporter: it traces the graph once and records the shape arithmetic of
    the padding (``pad_to_multiple`` pads by traced shapes while traced), so one file serves every size. Its
    warnings about the networks' Python shape checks, frozen into the trace, are silenced.
    """
    graph = graph.eval().cpu()
    inputs = graph_inputs(graph)
    names = ["image", "style"][: len(inputs)]
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "translated": {0: "batch", 2: "height", 3: "width"}}
    if len(inputs) == 2:
        axes["style"] = {0: "batch"}
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            inputs,
            target,
            input_names=names,
            output_names=["translated"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            **kwargs,
        )


def onnxruntime_session(model: "str | bytes") -> "object":
    """A CPU onnxruntime InferenceSession for a file or serialised model; UserError when onnxruntime is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(ORT_MISSING) from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass
class CheckResult:
    """One size of the check: the largest |onnxruntime - PyTorch| over the output, and for a graph with
    noise the standard deviation of the noise's effect (noisy minus noise-free output) in each."""

    size: tuple[int, int]
    max_abs_diff: float
    noise_std_onnx: Optional[float] = None
    noise_std_torch: Optional[float] = None


def run_session(session: "object", inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The session's output for torch inputs, as a torch tensor."""
    names = [i.name for i in session.get_inputs()]
    feeds = {name: tensor.detach().cpu().numpy().astype(np.float32) for name, tensor in zip(names, inputs)}
    return torch.from_numpy(session.run(None, feeds)[0])


def check_graph(
    graph: ExportGraph,
    path: str,
    reference: Callable[..., torch.Tensor],
    sizes: Sequence[tuple[int, int]] = ((64, 64), (48, 80)),
    batch: int = 2,
) -> list[CheckResult]:
    """Run the ONNX file ``path`` (exported from ``graph``) in onnxruntime against PyTorch on each (H, W) of ``sizes``.

    ``reference(*inputs)`` is PyTorch's answer for the graph's inputs in [0, 1] (the translation API's, not
    the graph module's own forward, so the padding and scaling in the graph are checked too). A graph whose
    generator injects noise is compared through a noise-free twin (exported to memory; same weights,
    ``reference`` called under :func:`noise_disabled`), and the noise's spread is reported for both.
    """
    noisy = graph.traits.noise
    session = onnxruntime_session(path)
    twin_session = None
    if noisy:
        buffer = io.BytesIO()
        export_graph(without_noise(graph), buffer)
        twin_session = onnxruntime_session(buffer.getvalue())
    results = []
    for index, (height, width) in enumerate(sizes):
        inputs = graph_inputs(graph, height, width, batch=batch, seed=index + 1)
        with torch.no_grad():
            if not noisy:
                diff = (run_session(session, inputs) - reference(*inputs).cpu()).abs().max()
                results.append(CheckResult((height, width), float(diff)))
                continue
            with noise_disabled(graph.module, graph.name):
                plain_torch = reference(*inputs).cpu()
            plain_onnx = run_session(twin_session, inputs)
            noise_torch = (reference(*inputs).cpu() - plain_torch).std()
            noise_onnx = (run_session(session, inputs) - plain_onnx).std()
            diff = (plain_onnx - plain_torch).abs().max()
            results.append(CheckResult((height, width), float(diff), float(noise_onnx), float(noise_torch)))
    return results
