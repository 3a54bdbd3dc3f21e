"""Test options: where results go and how many images to translate."""

import argparse
import json
import os

from options.base_options import BaseOptions
from util.errors import UserError

# Options that fix a generator's architecture: test.py takes them from the run's opt.json unless
# they are given on the command line, so a model trained with --ngf 32 tests without repeating it.
ARCHITECTURE_OPTIONS = ("model", "netG", "ngf", "normG", "norm", "no_dropout", "no_antialias",
                        "no_antialias_up", "input_nc", "output_nc", "direction",
                        # --model mmsc's generators
                        "style_dim", "n_downsample", "n_res", "mlp_dim", "mlp_layers")


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
        """The architecture options recorded in checkpoints/<name>/opt.json, if the run has one."""
        saved = saved_train_options(known.checkpoints_dir, known.name)
        return {k: saved[k] for k in ARCHITECTURE_OPTIONS if k in saved}


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
