#!/usr/bin/env python3
"""Run the published F-LSeSim ``train.py`` with a seed and a given VGG16 weight file.

    python scripts/published_train.py --published_root PATH --seed 3 \
        [--vgg_weights FILE] -- --dataroot ... --name ... --model sc ...

Everything after ``--`` goes to the published ``train.py`` unchanged. This launcher exists so that the
published code can be trained beside this project's on the same data with the same frozen VGG16:

- the published code seeds nothing; here ``random``, ``numpy`` and ``torch`` are seeded with ``--seed``
  before its ``train.py`` starts (its data order, crops, flips, initial weights, query locations and
  pool draws then follow from that one seed);
- its ``models.losses.VGG16`` calls ``torchvision.models.vgg16(pretrained=True)``, which downloads
  torchvision's file. Here the convolutions are loaded from ``--vgg_weights`` instead (default: the file
  this project's ``scripts/download_vgg16.py`` writes), and ``models.losses.Normalization`` takes that
  file's recorded mean/std (the Caffe-flavour file records its own preprocessing). With torchvision's
  own ``vgg16-397923af.pth`` both are exactly what the published code does online.

The published code is imported from ``--published_root`` (it has its own ``models``/``data``/``options``
packages, so nothing of this project is imported in this process).
"""

from __future__ import annotations

import argparse
import os
import random
import runpy
import sys

import numpy as np
import torch
import torchvision


def default_weights() -> str:
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in ("vgg16-397923af.pth", "vgg16_caffe_imagenet.pth"):
        if os.path.isfile(os.path.join(hub, name)):
            return os.path.join(hub, name)
    return os.path.join(hub, "vgg16-397923af.pth")


def read_weights(path: str) -> tuple[dict, list[float], list[float]]:
    """(features state_dict, mean, std) of a torchvision or a self-describing weight file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        sd, mean, std = state["state_dict"], state["mean"], state["std"]
    else:
        sd, mean, std = state, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    features = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    return features, list(mean), list(std)


def patch_published(weights: str) -> None:
    """Point the published VGG16 and Normalization at ``weights`` (imported from the published root)."""
    import models.losses as losses  # the published package: sys.path[0] is its root

    features, mean, std = read_weights(weights)
    build = torchvision.models.vgg16  # the published module's ``models`` is torchvision.models itself

    def vgg16(*args, **kwargs):
        net = build(weights=None)
        net.features.load_state_dict(features)
        return net

    losses.models.vgg16 = vgg16
    original_init = losses.Normalization.__init__

    def init(self, device):
        original_init(self, device)
        self.mean = torch.tensor(mean, device=device).view(-1, 1, 1)
        self.std = torch.tensor(std, device=device).view(-1, 1, 1)

    losses.Normalization.__init__ = init


def main() -> None:
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--published_root", required=True, help="a checkout of the published F-LSeSim code")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vgg_weights", default=None, help="VGG16 weight file (default: the torch hub cache)")
    args = parser.parse_args(argv[:cut])
    root = os.path.abspath(args.published_root)
    script = os.path.join(root, "train.py")
    if not os.path.isfile(script):
        sys.exit(f"--published_root: {root} has no train.py (a checkout of the published F-LSeSim code)")
    weights = args.vgg_weights or default_weights()
    if not os.path.isfile(weights):
        sys.exit(f"--vgg_weights: {weights} does not exist (run scripts/download_vgg16.py)")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    sys.path.insert(0, root)
    patch_published(weights)
    sys.argv = [script] + argv[cut + 1 :]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
