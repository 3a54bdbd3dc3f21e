"""Test options: where results go and how many images to translate."""

import argparse
import json
import os

import models
from options.base_options import BaseOptions
from util.errors import UserError


class TestOptions(BaseOptions):
    """``opt = TestOptions().parse()`` in test.py."""

    is_train = False
    __test__ = False  # not a pytest class, despite the name

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("test")
        g.add_argument("--results_dir", default="./results/", help="results/<name>/<phase>_<epoch>/")
        g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved images")
        g.add_argument("--phase", default="test", help="train, val, test, ...")
        g.add_argument("--eval", action="store_true", help="eval mode for the networks at test time")
        g.add_argument("--num_test", type=int, default=50, help="how many images to translate (0 or less: all)")
        # Whole, unflipped images in order; the generator handles any size by itself.
        parser.set_defaults(load_size=parser.get_default("crop_size"), no_flip=True, serial_batches=True,
                            num_threads=0)
        return parser

    def parse(self) -> argparse.Namespace:
        """The options, plus ``trained_direction``: the ``--direction`` of the trained run (its opt.json; the
        given one when it has none), for models that translate the other way too (mmsc)."""
        opt = super().parse()
        opt.trained_direction = saved_train_options(opt.checkpoints_dir, opt.name).get("direction", opt.direction)
        return opt

    def inherited_defaults(self, known: argparse.Namespace) -> dict:
        """The model and the architecture options recorded in checkpoints/<name>/opt.json, if the run has
        one: those the model class declares (``architecture_options``), of the model given on the
        command line or else the trained one."""
        saved = saved_train_options(known.checkpoints_dir, known.name)
        if not saved:
            return {}
        given = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        given.add_argument("--model", default=saved.get("model", known.model))
        model = given.parse_known_args(self.argv)[0].model
        keys = ("model", *models.find_model_using_name(model).architecture_options)
        return {k: saved[k] for k in keys if k in saved}


def saved_train_options(checkpoints_dir: str, name: str) -> dict:
    """The options of the training run checkpoints/<name> (its opt.json), or {} when it has none."""
    path = os.path.join(checkpoints_dir, name, "opt.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc}); delete it or fix it") from None
