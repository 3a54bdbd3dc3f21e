"""Generators, discriminators, resampling layers, norm lookup and weight init."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import DATA, reference_sections
from models.networks import (
    DISCRIMINATORS,
    GENERATORS,
    INIT_TYPES,
    build_discriminator,
    build_generator,
    define_D,
    define_G,
)
from models.networks.discriminators import MultiScaleDiscriminator, NLayerDiscriminator
from models.networks.traits import pad_to_multiple
from models.networks.init import init_weights
from models.networks.layers import Downsample, Upsample, get_norm_layer

REFERENCE_KEYS = DATA / "checkpoint_keys_sc.txt"


def shapes_of(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def make_G(name: str = "resnet_9blocks", **overrides: object) -> nn.Module:
    kwargs = dict(
        input_nc=3,
        output_nc=3,
        ngf=8,
        norm="instance",
        use_dropout=False,
        init_type="xavier",
        init_gain=0.02,
        no_antialias=False,
        no_antialias_up=False,
    )
    kwargs.update(overrides)
    return build_generator(kind=name, **kwargs)


def make_D(name: str = "basic", **overrides: object) -> nn.Module:
    kwargs = dict(
        input_nc=3, ndf=8, n_layers=3, norm="instance", init_type="xavier", init_gain=0.02, no_antialias=False
    )
    kwargs.update(overrides)
    return build_discriminator(kind=name, **kwargs)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def patchgan_out(size: int, n_layers: int, antialias: bool) -> int:
    """Output side of a PatchGAN, chained from the textbook conv output-size formula."""
    for _ in range(n_layers):
        if antialias:
            size = conv_out(conv_out(size, 4, 1, 1), 3, 2, 1)  # conv 4x4 s1 p1, then blur 3x3 s2 pad 1
        else:
            size = conv_out(size, 4, 2, 1)
    return conv_out(conv_out(size, 4, 1, 1), 4, 1, 1)


# Checkpoint compatibility.


def test_default_generator_matches_reference_checkpoint_keys() -> None:
    net = define_G("resnet_9blocks", 3, 3, 64, "instance", False, "xavier", 0.02, False, False)
    assert shapes_of(net) == reference_sections(REFERENCE_KEYS)["net_G"]


def test_default_discriminator_matches_reference_checkpoint_keys() -> None:
    net = define_D("basic", 3, 64, 3, "instance", "xavier", 0.02, False)
    assert shapes_of(net) == reference_sections(REFERENCE_KEYS)["net_D"]


def test_the_positional_builders_are_the_keyword_ones() -> None:
    """define_G / define_D (the published code bases' positional form) build what the keyword builders build."""
    torch.manual_seed(0)
    positional = define_G("resnet_6blocks", 3, 1, 8, "batch", True, "normal", 0.05, True, False).state_dict()
    torch.manual_seed(0)
    keyword = build_generator(
        kind="resnet_6blocks",
        output_nc=1,
        ngf=8,
        norm="batch",
        use_dropout=True,
        init_type="normal",
        init_gain=0.05,
        no_antialias=True,
    ).state_dict()
    assert positional.keys() == keyword.keys() and all(torch.equal(positional[k], keyword[k]) for k in keyword)
    torch.manual_seed(1)
    positional = define_D("basic", 1, 8, 2, "batch", "normal", 0.05, True).state_dict()
    torch.manual_seed(1)
    keyword = build_discriminator(
        kind="basic", input_nc=1, ndf=8, n_layers=2, norm="batch", init_type="normal", init_gain=0.05, no_antialias=True
    ).state_dict()
    assert positional.keys() == keyword.keys() and all(torch.equal(positional[k], keyword[k]) for k in keyword)
    with pytest.raises(TypeError):
        build_generator("resnet_9blocks")  # keyword-only


def test_blur_buffers_are_saved_and_fixed() -> None:
    state = make_G().state_dict()
    expected = torch.tensor([1.0, 2.0, 1.0])
    expected = torch.outer(expected, expected) / 16
    assert torch.equal(state["model.7.filt"][3, 0], expected)
    assert all("filt" not in name for name, _ in make_G().named_parameters())


# Generators.


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("size", [(32, 32), (37, 23), (5, 3), (1, 2)])
def test_every_generator_keeps_the_input_size(name: str, size: tuple[int, int]) -> None:
    net = make_G(name).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, *size)
    assert torch.isfinite(y).all()
    if name != "stylegan2":  # the reference's StyleGAN2 G ends in a leaky ReLU, not tanh
        assert y.abs().max() <= 1.0


@pytest.mark.parametrize("no_antialias,no_antialias_up", [(True, False), (False, True), (True, True)])
def test_generator_antialias_off_variants(no_antialias: bool, no_antialias_up: bool) -> None:
    net = make_G("resnet_6blocks", no_antialias=no_antialias, no_antialias_up=no_antialias_up)
    modules = list(net.modules())
    assert any(isinstance(m, Downsample) for m in modules) != no_antialias
    assert any(isinstance(m, Upsample) for m in modules) != no_antialias_up
    assert any(isinstance(m, nn.ConvTranspose2d) for m in modules) == no_antialias_up
    strided = [m for m in modules if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == (2 if no_antialias else 0)
    assert net(torch.randn(1, 3, 37, 23)).shape == (1, 3, 37, 23)


def test_generator_block_counts_dropout_and_bias() -> None:
    net = make_G("resnet_6blocks", use_dropout=True, norm="batch")
    blocks = [m for m in net.model if type(m).__name__ == "ResnetBlock"]
    assert len(blocks) == 6
    assert len(make_G("resnet_9blocks").model) == 32
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 6
    # Batch norm has its own shift, so the convs before it carry no bias (the last conv does).
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.bias is not None for c in convs] == [False] * (len(convs) - 1) + [True]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 1 + 2 + 12 + 2


def test_generator_output_of_an_odd_size_equals_the_cropped_padded_run() -> None:
    net = make_G("resnet_6blocks").eval()
    x = torch.randn(1, 3, 13, 10)
    padded = F.pad(F.pad(x, (0, 2, 0, 0), mode="reflect"), (0, 0, 0, 3), mode="reflect")  # to 16 x 12
    with torch.no_grad():
        assert torch.allclose(net(x), net.model(padded)[:, :, :13, :10], atol=1e-6)


def test_pad_to_multiple_uses_reflection_then_replication() -> None:
    x = torch.arange(12.0).reshape(1, 1, 2, 6)
    padded = pad_to_multiple(x, 4, min_size=8)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[0, 0, 0], torch.tensor([0.0, 1, 2, 3, 4, 5, 4, 3]))  # pad 2 < 6: reflect
    assert torch.equal(padded[0, 0, :, 0], torch.tensor([0.0, 6, 6, 6, 6, 6, 6, 6]))  # pad 6 >= 2: replicate
    small = pad_to_multiple(torch.arange(5.0).reshape(1, 1, 1, 5), 4)
    assert torch.equal(small[0, 0, 0], torch.tensor([0.0, 1, 2, 3, 4, 3, 2, 1]))


def test_generator_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="expected input"):
        make_G()(torch.randn(1, 1, 16, 16))


# Discriminators.


@pytest.mark.parametrize("name", ["basic", "n_layers"])
@pytest.mark.parametrize("size", [(32, 32), (45, 37), (24, 61)])
@pytest.mark.parametrize("no_antialias", [False, True])
def test_single_scale_discriminators(name: str, size: tuple[int, int], no_antialias: bool) -> None:
    net = make_D(name, no_antialias=no_antialias)
    y = net(torch.randn(2, 3, *size))
    assert isinstance(y, torch.Tensor)
    expected = tuple(patchgan_out(s, 3, antialias=not no_antialias) for s in size)
    assert y.shape == (2, 1, *expected)
    assert min(expected) >= 1


# 'stylegan2' gives one logit per image; tests/models/test_sinsc.py covers it.
@pytest.mark.parametrize("name", sorted(set(DISCRIMINATORS) - {"stylegan2"}))
@pytest.mark.parametrize("size", [(64, 64), (69, 51)])
def test_every_discriminator_gives_patch_logits(name: str, size: tuple[int, int]) -> None:
    output = make_D(name)(torch.randn(2, 3, *size))
    maps = output if isinstance(output, list) else [output]
    assert isinstance(output, list) == (name == "bimulti")
    for scale, logits in enumerate(maps):
        side = tuple(math.ceil(s / 2**scale) for s in size)
        assert logits.shape == (2, 1, *(patchgan_out(s, 3, antialias=name != "bimulti") for s in side))
        assert torch.isfinite(logits).all()


def test_n_layers_changes_depth() -> None:
    net = make_D("n_layers", n_layers=2)
    assert net(torch.randn(1, 3, 32, 21)).shape == (1, 1, patchgan_out(32, 2, True), patchgan_out(21, 2, True))
    assert sum(isinstance(m, Downsample) for m in net.modules()) == 2
    assert sum(isinstance(m, Downsample) for m in make_D("basic", n_layers=4).modules()) == 4


@pytest.mark.parametrize("size", [(64, 64), (69, 51)])
def test_bimulti_returns_two_scales(size: tuple[int, int]) -> None:
    net = make_D("bimulti")
    outputs = net(torch.randn(2, 3, *size))
    assert isinstance(outputs, list) and len(outputs) == 2
    half = tuple(math.ceil(s / 2) for s in size)
    assert outputs[0].shape == (2, 1, *(patchgan_out(s, 3, False) for s in size))
    assert outputs[1].shape == (2, 1, *(patchgan_out(s, 3, False) for s in half))
    assert net.model1[0].out_channels == 4 and net.model0[0].out_channels == 8


def test_bimulti_second_scale_sees_the_average_pooled_image() -> None:
    net = make_D("bimulti")
    x = torch.randn(1, 3, 48, 48)
    pooled = torch.zeros(1, 3, 24, 24)
    xp = F.pad(x, (1, 1, 1, 1))
    ones = F.pad(torch.ones(1, 1, 48, 48), (1, 1, 1, 1))
    for i in range(24):
        for j in range(24):
            window = (slice(None), slice(None), slice(2 * i, 2 * i + 3), slice(2 * j, 2 * j + 3))
            pooled[0, :, i, j] = xp[window].sum((-2, -1))[0] / ones[window].sum()  # border: real pixels only
    assert torch.allclose(net(x)[1], net.model1(pooled), atol=1e-5)


def test_discriminator_classes_default_to_the_reference_layout() -> None:
    assert isinstance(make_D("basic"), NLayerDiscriminator)
    assert isinstance(make_D("bimulti"), MultiScaleDiscriminator)


# Registry errors.


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="resnet_6blocks, resnet_9blocks"):
        make_G("unet_256")
    with pytest.raises(ValueError, match="basic, bimulti, n_layers"):
        make_D("patch")
    with pytest.raises(ValueError, match="batch, instance, none"):
        get_norm_layer("group")
    with pytest.raises(ValueError, match=", ".join(INIT_TYPES)):
        make_G(init_type="uniform")


# Norm layers.


def test_norm_layers() -> None:
    instance = get_norm_layer("instance")(4)
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine and not instance.track_running_stats
    batch = get_norm_layer("batch")(4)
    assert isinstance(batch, nn.BatchNorm2d) and batch.affine and batch.track_running_stats
    assert isinstance(get_norm_layer("none")(4), nn.Identity)


# Resampling layers against direct numpy loops.


def test_downsample_matches_numpy_blur_and_subsample() -> None:
    x = np.random.default_rng(0).standard_normal((2, 7, 6)).astype(np.float32)
    row = np.array([1.0, 2.0, 1.0])
    kernel = np.outer(row, row) / 16
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    expected = np.zeros((2, 4, 3))
    for c in range(2):
        for i in range(4):
            for j in range(3):
                expected[c, i, j] = (padded[c, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * kernel).sum()
    out = Downsample(2)(torch.from_numpy(x)[None])
    assert out.shape == (1, 2, 4, 3)
    assert np.allclose(out[0].numpy(), expected, atol=1e-6)


def test_upsample_matches_numpy_transposed_blur() -> None:
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)
    row = np.array([1.0, 3.0, 3.0, 1.0])
    kernel = np.outer(row, row) / 64 * 4
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")  # (2, 7, 6)
    # Scatter every padded pixel's kernel onto a zero-inserted grid at stride 2.
    full = np.zeros((2, 2 * 7 + 2, 2 * 6 + 2))
    for c in range(2):
        for i in range(7):
            for j in range(6):
                full[c, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += padded[c, i, j] * kernel
    # Output pixel 0 sits 1.5 input pixels into the padded grid: scattered position 3.
    expected = full[:, 3 : 3 + 10, 3 : 3 + 8]
    out = Upsample(2)(torch.from_numpy(x)[None])
    assert out.shape == (1, 2, 10, 8)
    assert np.allclose(out[0].numpy(), expected, atol=1e-6)


def test_upsample_equals_bilinear_doubling() -> None:
    # [1,3,3,1]/4 per axis is exactly half-pixel-aligned bilinear x2 with edge clamping.
    x = torch.randn(1, 3, 6, 9)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(Upsample(3)(x), expected, atol=1e-6)


def test_resampling_keeps_constants_and_halves_odd_sizes_up() -> None:
    x = torch.full((1, 2, 9, 5), 0.7)
    assert torch.allclose(Downsample(2)(x), torch.full((1, 2, 5, 3), 0.7))
    assert torch.allclose(Upsample(2)(x), torch.full((1, 2, 18, 10), 0.7))


# Weight init.


@pytest.mark.parametrize("init_type", INIT_TYPES)
def test_init_weights_sets_biases_to_zero_and_spreads_weights(init_type: str) -> None:
    net = nn.Sequential(nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.Linear(64, 64))
    for p in net.parameters():
        nn.init.constant_(p, 5.0)
    init_weights(net, init_type, 0.02)
    conv, batch_norm, linear = net
    assert torch.all(conv.bias == 0) and torch.all(linear.bias == 0) and torch.all(batch_norm.bias == 0)
    fan_in, fan_out = 16 * 9, 32 * 9
    expected_std = {
        "normal": 0.02,
        "xavier": 0.02 * math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming": math.sqrt(2.0 / fan_in),
        "orthogonal": None,
    }[init_type]
    if expected_std is not None:
        assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.15)
    else:
        flat = conv.weight.reshape(32, -1)
        assert torch.allclose(flat @ flat.T, 0.02**2 * torch.eye(32), atol=1e-6)
    assert batch_norm.weight.mean().item() == pytest.approx(1.0, abs=0.02)
    assert 0 < batch_norm.weight.std().item() < 0.05


def test_define_keeps_blur_buffers_after_init() -> None:
    net = make_D("basic", init_type="normal", init_gain=1.0)
    blur = net.state_dict()["model.2.filt"]
    assert torch.allclose(blur.sum((-2, -1)), torch.ones(8, 1))
