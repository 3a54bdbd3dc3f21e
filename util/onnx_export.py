"""ONNX graphs of trained generators that take and give images in [0, 1], and their check against PyTorch.

The graphs hold everything a user of the PyTorch model would otherwise have to repeat, and which
published ONNX exports of CycleGAN-style generators are known to get wrong:

- the input scaling: images come in as float32 RGB (or grey) in [0, 1], (N, C, H, W); the graph maps
  them to [-1, 1] with (x - 0.5) / 0.5, and maps the generator's output back with y * 0.5 + 0.5,
  clamped to [0, 1];
- any height and width of at least ``2 * multiple`` pixels (8 for the generators here): the graph
  reflection-pads the image at the bottom and right to the generator's size multiple and crops the
  output back to the input's size, as the PyTorch generators do;
- batch, height and width are dynamic axes.

Two graphs: :class:`ImageGraph` (``image`` -> ``translated``) for the one-network generators (sc, cut,
cycle_gan, sinsc), and :class:`StyleGraph` (``image``, ``style`` -> ``translated``) for mmsc: the content
encoder of the source domain and the decoder of the target domain, with the style code (N, style_dim,
1, 1) as the second input (draw it from N(0, I) for random styles).

The sinsc generator (StyleGAN2 blocks) adds per-pixel Gaussian noise in its decoder at test time, as
in PyTorch; the graph draws it with ONNX's RandomNormalLike, so its output varies from run to run
exactly as PyTorch's does. :func:`check_graph` therefore compares a noise-free twin of the graph
number for number, and the noise's effect by its spread.
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
import torch.nn.functional as F
from torch import nn

from models.networks.munit import MUNITGenerator
from models.networks.stylegan2 import StyledConv
from util.errors import UserError

OPSET = 17
ORT_MISSING = "onnxruntime is not installed; install it with: pip install onnxruntime"


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflection-pad (N, C, H, W) at the bottom and right to multiples of ``multiple``.

    The amounts are computed from the traced shape (``(m - H % m) % m``), so an exported graph pads every
    input size correctly (the generators' own padding decides in Python, which a trace would freeze).
    Reflection needs H, W > the amount, so sides of at least ``multiple``.
    """
    height, width = x.shape[2], x.shape[3]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    return F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1], the range every generator here is trained on: (x - 0.5) / 0.5."""
    return (image - 0.5) / 0.5


def to_image_range(output: torch.Tensor) -> torch.Tensor:
    """A generator's [-1, 1] output -> [0, 1] images (clamped: the sinsc decoder's noise may overshoot)."""
    return (output * 0.5 + 0.5).clamp(0.0, 1.0)


def size_multiple(net: nn.Module) -> int:
    """The size a generator's input sides must be a multiple of (its ``multiple``, 2 ** its downsamplings)."""
    multiple = getattr(net, "multiple", None)
    if multiple is None and isinstance(net, MUNITGenerator):
        multiple = 2 ** net.n_downsample
    if not isinstance(multiple, int):
        raise ValueError(f"{type(net).__name__} does not declare its size multiple ('multiple' attribute)")
    return multiple


class ImageGraph(nn.Module):
    """image (N, C, H, W) in [0, 1] -> translated (N, C', H, W) in [0, 1] through one generator."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.multiple = size_multiple(generator)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[2], image.shape[3]
        out = self.generator(reflect_pad_to_multiple(to_model_range(image), self.multiple))
        return to_image_range(out[:, :, :height, :width])


class StyleGraph(nn.Module):
    """(image (N, C, H, W) in [0, 1], style (N, style_dim, 1, 1)) -> translated (N, C', H, W) in [0, 1].

    ``encoder``'s content encoder (the source domain's MUNIT generator) and ``decoder``'s MLP and decoder
    (the target domain's): the mmsc translation with the given style codes.
    """

    def __init__(self, encoder: MUNITGenerator, decoder: MUNITGenerator) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.multiple = size_multiple(encoder)
        self.style_dim = decoder.style_dim

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[2], image.shape[3]
        content = self.encoder.enc_content(reflect_pad_to_multiple(to_model_range(image), self.multiple))
        out = self.decoder.decode(content, style)
        return to_image_range(out[:, :, :height, :width])


def has_noise(net: nn.Module) -> bool:
    """Whether ``net`` draws random noise in its forward pass (StyleGAN2 noise injection)."""
    return any(isinstance(m, StyledConv) and m.inject_noise for m in net.modules())


def without_noise(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (same weights) that injects no noise: the deterministic part of its computation."""
    twin = copy.deepcopy(net)
    for module in twin.modules():
        if isinstance(module, StyledConv):
            module.inject_noise = False
    return twin


def style_codes(count: int, style_dim: int, seed: int) -> torch.Tensor:
    """(count, style_dim, 1, 1) codes from N(0, I), drawn as the mmsc model draws its ``n_styles`` codes for
    ``seed`` (a fresh generator seeded with it), so a graph fed these matches the API's translations."""
    return torch.randn(count, style_dim, 1, 1, generator=torch.Generator().manual_seed(seed))


def graph_inputs(graph: nn.Module, height: int = 64, width: int = 64, batch: int = 1,
                 seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Example inputs for ``graph``: ``batch`` random [0, 1] images drawn with ``seed``; for a StyleGraph one
    such image repeated ``batch`` times with the codes :func:`style_codes` ``(batch, style_dim, 0)`` (the
    mmsc model's ``n_styles=batch, seed=0``)."""
    generator = torch.Generator().manual_seed(seed)
    device = next(graph.parameters()).device
    channels = _input_channels(graph)
    if isinstance(graph, StyleGraph):
        image = torch.rand(1, channels, height, width, generator=generator).expand(batch, -1, -1, -1)
        return image.contiguous().to(device), style_codes(batch, graph.style_dim, 0).to(device)
    return (torch.rand(batch, channels, height, width, generator=generator).to(device),)


def _input_channels(graph: nn.Module) -> int:
    """The image channels the graph's first convolution takes."""
    net = graph.encoder.enc_content if isinstance(graph, StyleGraph) else graph.generator
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 4:  # StyleGAN2's equalised convs
            return weight.shape[-3]
    raise ValueError("the generator has no convolution")


def export_graph(graph: nn.Module, target: "str | io.BytesIO", opset: int = OPSET) -> None:
    """Write ``graph`` (eval mode, on the CPU) as ONNX to ``target`` with dynamic batch, height and width.

    Uses the TorchScript-based exporter: it traces the graph once and records the shape arithmetic of
    the padding, so one file serves every size. Its warnings about Python control flow in the
    generators' own padding are silenced: the graph pads first, so that padding never applies.
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
        torch.onnx.export(graph, inputs, target, input_names=names, output_names=["translated"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, **kwargs)


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


def check_graph(graph: nn.Module, path: str, reference: Callable[..., torch.Tensor],
                sizes: Sequence[tuple[int, int]] = ((64, 64), (48, 80)), batch: int = 2) -> list[CheckResult]:
    """Run the ONNX file ``path`` (exported from ``graph``) in onnxruntime against PyTorch on each (H, W) of ``sizes``.

    ``reference(*inputs)`` is PyTorch's answer for the graph's inputs in [0, 1] (the translation API's, not
    the graph module's own forward, so the padding and scaling in the graph are checked too). A graph whose
    generator injects noise is compared through a noise-free twin (exported to memory; same weights,
    ``reference`` called under :func:`noise_disabled`), and the noise's spread is reported for both.
    """
    noisy = has_noise(graph)
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
            with noise_disabled(graph):
                plain_torch = reference(*inputs).cpu()
            plain_onnx = run_session(twin_session, inputs)
            noise_torch = (reference(*inputs).cpu() - plain_torch).std()
            noise_onnx = (run_session(session, inputs) - plain_onnx).std()
            diff = (plain_onnx - plain_torch).abs().max()
            results.append(CheckResult((height, width), float(diff), float(noise_onnx), float(noise_torch)))
    return results


class noise_disabled:
    """Context manager: every StyledConv inside ``net`` injects no noise, restored on exit."""

    def __init__(self, net: nn.Module) -> None:
        self.layers = [m for m in net.modules() if isinstance(m, StyledConv)]
        self.saved = [m.inject_noise for m in self.layers]

    def __enter__(self) -> None:
        for layer in self.layers:
            layer.inject_noise = False

    def __exit__(self, *exc: object) -> None:
        for layer, saved in zip(self.layers, self.saved):
            layer.inject_noise = saved
