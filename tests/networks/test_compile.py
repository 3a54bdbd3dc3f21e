"""--compile covers the ResNet generator: replicate padding that Inductor can differentiate.

``F.pad(mode='replicate')`` has a backward (``aten.replication_pad2d_backward``) that torch.compile
cannot lower on the CPU, so the generator used to fall back to eager. The padding is now built from
slices and ``cat``; these tests hold it to F.pad and the compiled generator to the eager one.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F

from models.wrappers import CompiledOrEager
from models.networks.generators import ResnetGenerator
from models.networks.layers import ReplicationPad2d, replicate_pad


@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (0, 3, 0, 0), (2, 0, 1, 4), (0, 0, 0, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_replicate_pad_equals_f_pad_forward_and_backward(pad, channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 3, 5 + pad[2] + pad[3], 7 + pad[0] + pad[1])  # a different weight per output pixel
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = replicate_pad(ours, pad), F.pad(theirs, pad, mode="replicate")
    assert torch.equal(out, expected)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-6)


def test_replication_pad_module_matches_torch_module():
    x = torch.randn(1, 2, 4, 6)
    assert torch.equal(ReplicationPad2d(2)(x), torch.nn.ReplicationPad2d(2)(x))


@pytest.mark.slow
def test_compiled_resnet_generator_equals_eager_without_fallback():
    # The smallest ResNet generator with every replicate pad: anti-aliased upsampling and the blocks.
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1, padding_type="replicate")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    compiled_x, eager_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    with warnings.catch_warnings():
        # A fall-back to eager warns "--compile: ...": that would fail here (other libraries' warnings may not).
        warnings.filterwarnings("error", message="--compile")
        wrapped = CompiledOrEager(net, "G")
        out = wrapped(compiled_x)
        assert not wrapped.failed
        compiled = torch.autograd.grad((out * out).sum(), [compiled_x, *net.parameters()])
    expected = net(eager_x)
    eager = torch.autograd.grad((expected * expected).sum(), [eager_x, *net.parameters()])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # Conv biases in front of instance norm have a true gradient of 0 (rounding noise), so each
    # gradient is compared at the scale of the largest one.
    scale = max(g.abs().max() for g in eager)
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got / scale, want / scale, rtol=0, atol=1e-5)
