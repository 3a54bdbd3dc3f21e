"""ONNX export (inference/onnx_export.py, export.py): onnxruntime against PyTorch for every exported network.

The bound: ``BOUND`` = 1e-4 on the [0, 1] output (float32 on the CPU gives about 1e-6). The references are
computed here from the networks' own forward passes with the scaling written out, not by the graph modules,
so a graph that forgot the scaling, padded differently or cropped wrongly fails.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.networks import build_generator
from inference.onnx_export import ExportGraph, check_graph, export_graph, graph_inputs, onnxruntime_session, run_session
from models.networks.munit import MUNITGenerator, MUNITTranslation, draw_style_codes
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

BOUND = 1e-4
SIZES = ((32, 32), (45, 70))  # (H, W): square, and non-square needing padding to the multiple of 4


def by_hand(generator):
    """PyTorch's answer for [0, 1] images: the generator's own forward (its own padding) on (x - 0.5) / 0.5."""
    return lambda image: ((generator(image * 2 - 1) + 1) / 2).clamp(0, 1)


GENERATORS = {
    # netG, norm, no_antialias, no_antialias_up: sc (and cut) default, cycle_gan (strided convs), stylegan2 (sinsc)
    "sc/cut resnet_9blocks": ("resnet_9blocks", "instance", False, False),
    "cycle_gan resnet_6blocks": ("resnet_6blocks", "instance", True, True),
    "sinsc stylegan2": ("stylegan2", "instance", False, False),
}


@pytest.mark.parametrize("label", list(GENERATORS))
def test_image_graph_matches_pytorch_on_two_sizes(label, tmp_path):
    net_g, norm, no_aa, no_aa_up = GENERATORS[label]
    torch.manual_seed(0)
    generator = build_generator(
        kind=net_g, ngf=8, norm=norm, init_type="normal", no_antialias=no_aa, no_antialias_up=no_aa_up
    ).eval()
    for name, param in generator.named_parameters():
        if name.endswith("noise.weight"):
            param.data.fill_(0.3)  # trained noise weights are not 0 (initially they are)
    graph = ExportGraph(generator, 3)
    path = str(tmp_path / "g.onnx")
    export_graph(graph, path)
    results = check_graph(graph, path, by_hand(generator), sizes=SIZES, batch=2)
    assert [r.size for r in results] == list(SIZES)
    for result in results:
        assert result.max_abs_diff < BOUND, (label, result)
    if generator.inference.noise:
        for result in results:  # the noise is in the graph, as strong as in PyTorch
            assert 0.8 < result.noise_std_onnx / result.noise_std_torch < 1.25, result
            assert result.noise_std_onnx > 0.01


def test_the_graph_scales_and_pads_inside(tmp_path):
    """[0, 1] in and out, any size >= 8: an odd, non-square batch gives the shape back, within [0, 1], equal to
    the by-hand reference; the graph's inputs and output are named and dynamic."""
    torch.manual_seed(1)
    generator = build_generator(kind="resnet_6blocks", ngf=8, init_type="normal").eval()
    path = str(tmp_path / "g.onnx")
    export_graph(ExportGraph(generator, 3), path)
    session = onnxruntime_session(path)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert session.get_outputs()[0].name == "translated"
    for shape in ((3, 3, 9, 13), (1, 3, 17, 8)):
        image = torch.rand(*shape)
        out = run_session(session, (image,))
        assert out.shape == image.shape
        assert 0.0 <= out.min() and out.max() <= 1.0
        with torch.no_grad():
            assert (out - by_hand(generator)(image)).abs().max() < BOUND


def mmsc_by_hand(encoder, decoder):
    """The mmsc translation written out: reflect-pad to 4, E_A's content, G_B's decoder with the code, crop."""

    def run(image, style):
        x = image * 2 - 1
        h, w = x.shape[2:]
        padded = F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
        return ((decoder(encoder(padded)[0], style)[:, :, :h, :w] + 1) / 2).clamp(0, 1)

    return run


def test_style_graph_matches_pytorch_on_two_sizes(tmp_path):
    torch.manual_seed(0)
    encoder = MUNITGenerator(3, ngf=8, n_res=1, mlp_dim=16).eval()
    decoder = MUNITGenerator(3, ngf=8, n_res=1, mlp_dim=16).eval()
    graph = ExportGraph(MUNITTranslation(encoder, decoder), 3)
    path = str(tmp_path / "m.onnx")
    export_graph(graph, path)
    session = onnxruntime_session(path)
    assert [i.name for i in session.get_inputs()] == ["image", "style"]
    assert session.get_inputs()[1].shape == ["batch", 8, 1, 1]
    results = check_graph(graph, path, mmsc_by_hand(encoder, decoder), sizes=SIZES, batch=3)
    for result in results:
        assert result.max_abs_diff < BOUND, result
    # the style input matters: two codes give two different translations of one image
    image, codes = graph_inputs(graph, 32, 32, batch=2)
    out = run_session(session, (image, codes))
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_style_codes_are_the_models_draw():
    """draw_style_codes(K, d, seed) is the mmsc model's rule: K codes from one generator seeded with ``seed``."""
    expected = torch.randn(5, 8, 1, 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw_style_codes(5, 8, 3), expected)
    assert np.isclose(float(draw_style_codes(4000, 8, 0).std()), 1.0, atol=0.03)


def test_a_network_that_declares_nothing_is_refused_by_name():
    """Export reads the declaration; a module without one is a one-line UserError naming it, not a guess."""
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Tanh())
    with pytest.raises(UserError, match="my net declares no inference traits.*cannot be exported"):
        ExportGraph(plain, 3, name="my net")


def test_the_translator_on_onnxruntime_equals_pytorch(tmp_path):
    """Translator.load(..., backend='onnxruntime'): whole images through the exported graph, within float rounding
    of PyTorch (the bound above, on [0, 1] tensors), exported once; a misnamed backend is one line."""
    from inference import Translator

    torch.manual_seed(0)
    torch.save(build_generator(kind="resnet_6blocks", ngf=8).state_dict(), tmp_path / "latest_net_G.pth")
    reference = Translator.load(tmp_path / "latest_net_G.pth")
    fast = Translator.load(tmp_path / "latest_net_G.pth", backend="onnxruntime")
    x = torch.rand(2, 3, 45, 70)
    expected, got = reference.translate(x), fast.translate(x)
    assert fast._session is not None and got.shape == expected.shape == (2, 3, 45, 70)
    assert float((got - expected).abs().max()) <= BOUND
    session = fast._session
    fast.translate(torch.rand(1, 3, 32, 32))
    assert fast._session is session  # one export serves every size
    with pytest.raises(UserError, match="^backend 'tensorrt': use 'torch' or 'onnxruntime'$"):
        Translator.load(tmp_path / "latest_net_G.pth", backend="tensorrt")
