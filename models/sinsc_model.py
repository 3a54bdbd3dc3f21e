"""The ``sinsc`` model: translate one photo into the manner of one painting (single-image F-LSeSim).

It is the ``sc`` model (spatially-correlative loss + GAN, see models/sc_model.py) with the
single-image settings of the reference as defaults, each of which a flag overrides:

- data: ``--dataset_mode singleimage`` (one image in trainA, one in trainB), ``--preprocess
  zoom_and_patch`` with ``--crop_size 128`` and ``--random_scale_max 3``, ``--batch_size 16``;
  an epoch is 100,000 patches (``--max_dataset_size`` shortens it), ``--n_epochs 4
  --n_epochs_decay 4``, a checkpoint every epoch;
- networks: ``--netG stylegan2`` (2 downsamplings, 6 residual blocks) and ``--netD stylegan2``
  with ``--ngf 8 --ndf 8`` (models/networks/stylegan2.py);
- objective: ``--gan_mode nonsaturating``, ``--lambda_gradient 1`` (gradient penalty),
  ``--lambda_spatial 10``; Adam with ``--lr 0.001 --beta1 0 --beta2 0.99``; no image pool
  (``--pool_size 0``, as the published train_sinsc.sh): D always sees the current fakes.

At test time the whole photo is translated at its own size (``--preprocess none``, batch 1,
one result). The generator does not depend on the crop, so any photo size works.
"""

from __future__ import annotations

import argparse

from models.sc_model import SCModel

TRAIN_DEFAULTS: dict[str, object] = {
    "dataset_mode": "singleimage",
    "preprocess": "zoom_and_patch",
    "crop_size": 128,
    "batch_size": 16,
    "netG": "stylegan2",
    "netD": "stylegan2",
    "ngf": 8,
    "ndf": 8,
    "gan_mode": "nonsaturating",
    "lambda_gradient": 1.0,
    "lambda_spatial": 10.0,
    "lr": 0.001,
    "beta1": 0.0,
    "beta2": 0.99,
    "n_epochs": 4,
    "n_epochs_decay": 4,
    "save_epoch_freq": 1,
    "pool_size": 0,
}
TEST_DEFAULTS: dict[str, object] = {"dataset_mode": "singleimage", "preprocess": "none", "batch_size": 1, "num_test": 1}
# test.py takes the generator's architecture from the run's opt.json by making it the parser's
# default before this model's flags are added; only a default still at the framework's value
# (nothing inherited) may become the single-image one.
ARCHITECTURE_DEFAULTS: dict[str, tuple[object, object]] = {"netG": ("resnet_9blocks", "stylegan2"), "ngf": (64, 8)}


class SinSCModel(SCModel):
    """Single-image translation A -> B: the ``sc`` model with the single-image defaults above."""

    smoke_options = ("--crop_size", "32", "--batch_size", "1", "--patch_nums", "16")

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """The ``sc`` flags, with the single-image defaults for training or testing."""
        parser = SCModel.modify_commandline_options(parser, is_train)
        if is_train:
            parser.set_defaults(**TRAIN_DEFAULTS)
            return parser
        parser.set_defaults(**TEST_DEFAULTS)
        for key, (framework_default, single_image_default) in ARCHITECTURE_DEFAULTS.items():
            if parser.get_default(key) == framework_default:
                parser.set_defaults(**{key: single_image_default})
        return parser
