"""Test options: where results go and how many images to translate."""

import argparse
import json
import os
from typing import Optional

import models
from options.base_options import BaseOptions
from util.errors import UserError


class TestOptions(BaseOptions):
    """``opt = TestOptions().parse()`` in test.py."""

    is_train = False
    __test__ = False  # not a pytest class, despite the name

    def __init__(self, argv: Optional[list[str]] = None, saved: Optional[dict] = None) -> None:
        """``saved``: the trained run's options when they come from elsewhere than checkpoints/<name>/opt.json
        (a Hub folder's config.json, a lone generator file's architecture); None reads opt.json."""
        super().__init__(argv)
        self.argv = upstream_test_model(self.argv)
        self.saved = saved

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("test")
        g.add_argument("--results_dir", default="./results/", help="results/<name>/<phase>_<epoch>/")
        g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved images")
        g.add_argument("--phase", default="test", help="train, val, test, ...")
        g.add_argument("--eval", action="store_true", help="eval mode for the networks at test time")
        g.add_argument("--num_test", type=int, default=50, help="how many images to translate (0 or less: all)")
        # Whole, unflipped images in order; the generator handles any size by itself.
        parser.set_defaults(load_size=parser.get_default("crop_size"), no_flip=True, serial_batches=True, num_threads=0)
        return parser

    def parse(self) -> argparse.Namespace:
        """The options, plus ``trained_direction``: the ``--direction`` of the trained run (its opt.json; the
        given one when it has none), for models that translate the other way too (mmsc)."""
        opt = super().parse()
        opt.trained_direction = self.saved_options(opt.checkpoints_dir, opt.name).get("direction", opt.direction)
        return opt

    def saved_options(self, checkpoints_dir: str, name: str) -> dict:
        """The trained run's options: those given to the constructor, else checkpoints/<name>/opt.json ({} if none)."""
        return self.saved if self.saved is not None else saved_train_options(checkpoints_dir, name)

    def inherited_defaults(self, known: argparse.Namespace) -> dict:
        """The model and the architecture options recorded in checkpoints/<name>/opt.json, if the run has
        one: those the model class declares (``architecture_options``), of the model given on the
        command line or else the trained one."""
        saved = self.saved_options(known.checkpoints_dir, known.name)
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


def upstream_test_model(argv: list[str]) -> list[str]:
    """``--model test`` as CycleGAN's test.py spells it: one generator file ``<epoch>_net_G.pth`` (a pretrained
    download) translating one folder. It becomes ``--model cycle_gan`` (CycleGAN's architecture defaults, and
    a lone ``net_G`` file is loaded as its ``G_A``, see translator.py) with ``--dataset_mode single`` unless
    given; other arguments are returned unchanged."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--model=test" or (arg == "--model" and i + 1 < len(argv) and argv[i + 1] == "test"):
            argv[i : i + (1 if "=" in arg else 2)] = ["--model", "cycle_gan"]
            if not any(a == "--dataset_mode" or a.startswith("--dataset_mode=") for a in argv):
                argv += ["--dataset_mode", "single"]
            break
    return argv
