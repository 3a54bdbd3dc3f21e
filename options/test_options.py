"""Test options: where results go and how many images to translate."""

import argparse

from options.base_options import BaseOptions


class TestOptions(BaseOptions):
    """``opt = TestOptions().parse()`` in test.py."""

    is_train = False

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
