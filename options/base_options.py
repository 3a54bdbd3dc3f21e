"""Options shared by training and testing, with the CycleGAN / CUT / F-LSeSim names and defaults.

Each model and dataset mode adds its own flags through ``modify_commandline_options(parser,
is_train)``, so ``python train.py --model sc --help`` lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn, Optional

import data
import models
from data.transforms import PREPROCESS_CHOICES
from util.dist import is_main_process, launched_by_torchrun
from util.errors import UserError
from util.image_io import write_text_atomic


class OptionParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


class BaseOptions:
    """Parse options once: ``opt = TrainOptions().parse()``."""

    is_train = False

    def __init__(self, argv: Optional[list[str]] = None) -> None:
        self.argv = sys.argv[1:] if argv is None else argv

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Flags common to train.py and test.py."""
        g = parser.add_argument_group("basic")
        g.add_argument(
            "--dataroot",
            default="./datasets/photo2painting",
            help="path to images (with subfolders trainA, trainB, testA, testB)",
        )
        g.add_argument("--name", default="experiment_name", help="name of the experiment: checkpoints/<name>")
        g.add_argument(
            "--gpu_ids",
            default=None,
            help="e.g. 0; -1 for the CPU; default: the first CUDA device if any, else the CPU. "
            "Several GPUs: torchrun --nproc_per_node=N train.py (process i takes the i-th id)",
        )
        g.add_argument("--checkpoints_dir", default="./checkpoints", help="models are saved here")
        g.add_argument("--seed", type=int, default=0, help="seed for python, numpy, torch and the data order")
        g = parser.add_argument_group("model")
        g.add_argument("--model", default="sc", help=f"model: {', '.join(models.available_models())}")
        g.add_argument("--input_nc", type=int, default=3, choices=[1, 3], help="input image channels")
        g.add_argument("--output_nc", type=int, default=3, choices=[1, 3], help="output image channels")
        g.add_argument("--ngf", type=int, default=64, help="generator filters in the first conv layer")
        g.add_argument("--ndf", type=int, default=64, help="discriminator filters in the first conv layer")
        from models.networks import DISCRIMINATORS, GENERATORS

        g.add_argument("--netD", default="basic", choices=sorted(DISCRIMINATORS), help="discriminator")
        g.add_argument("--netG", default="resnet_9blocks", choices=sorted(GENERATORS), help="generator")
        g.add_argument("--n_layers_D", type=int, default=3, help="layers of the n_layers discriminator")
        norms = ["instance", "batch", "none"]
        g.add_argument("--normG", default="instance", choices=norms, help="generator normalisation")
        g.add_argument("--normD", default="instance", choices=norms, help="discriminator normalisation")
        g.add_argument("--norm", default=None, choices=norms, help="sets both --normG and --normD")
        g.add_argument("--init_type", default="xavier", choices=["normal", "xavier", "kaiming", "orthogonal"])
        g.add_argument("--init_gain", type=float, default=0.02, help="scale for normal, xavier and orthogonal")
        g.add_argument(
            "--no_dropout",
            dest="no_dropout",
            action="store_true",
            default=True,
            help="no dropout in the generator (the default)",
        )
        g.add_argument("--dropout", dest="no_dropout", action="store_false", help="dropout 0.5 in the generator")
        g.add_argument("--no_antialias", action="store_true", help="stride-2 convs instead of blur-downsampling")
        g.add_argument("--no_antialias_up", action="store_true", help="transposed convs instead of blur-upsampling")
        g = parser.add_argument_group("data")
        g.add_argument("--dataset_mode", default="unaligned", choices=data.available_dataset_modes())
        g.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
        g.add_argument("--serial_batches", action="store_true", help="take images in order, B not at random")
        g.add_argument("--num_threads", type=int, default=4, help="data loading worker processes")
        g.add_argument(
            "--batch_size",
            type=int,
            default=1,
            help="images per step per process (under torchrun the step's batch is N times this)",
        )
        g.add_argument("--load_size", type=int, default=286, help="scale images to this size")
        g.add_argument("--crop_size", type=int, default=256, help="then crop to this size")
        g.add_argument(
            "--max_dataset_size", type=float, default=float("inf"), help="use at most this many images per epoch"
        )
        g.add_argument(
            "--preprocess",
            default="resize_and_crop",
            choices=PREPROCESS_CHOICES,
            help="how images are resized and cropped (zoom_and_patch: singleimage data only)",
        )
        g.add_argument("--no_flip", action="store_true", help="no random horizontal flips")
        g.add_argument(
            "--augment",
            action="store_true",
            help="also return colour-jittered copies (A_aug, B_aug) for LSeSim's head training",
        )
        g.add_argument(
            "--random_scale_max",
            type=float,
            default=3.0,
            help="largest zoom-out factor of zoom_and_patch (single image)",
        )
        g.add_argument("--display_winsize", type=int, default=256, help="display and HTML image size")
        g = parser.add_argument_group("speed")
        g.add_argument(
            "--amp",
            default="off",
            choices=["off", "bf16", "fp16"],
            help="mixed precision for G, D, VGG and the loss (fp16 adds a GradScaler)",
        )
        g.add_argument("--channels_last", action="store_true", help="NHWC memory format for networks and images")
        g.add_argument(
            "--compile",
            action="store_true",
            help="torch.compile G and D (falls back to eager with a warning where unsupported)",
        )
        g = parser.add_argument_group("misc")
        g.add_argument("--epoch", default="latest", help="which checkpoint to load: latest or an epoch number")
        g.add_argument("--verbose", action="store_true", help="print network architectures")
        g.add_argument("--suffix", default="", help="appended to --name, formatted with the options: {model}_{netG}")
        return parser

    # -------------------------------------------------------------------------------------
    def gather_options(self) -> argparse.Namespace:
        """Parse in three passes: base flags, then the model's and the dataset mode's own."""
        parser = OptionParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        parser = self.initialize(parser)
        known, _ = parser.parse_known_args(self.argv)
        inherited = self.inherited_defaults(known)
        if inherited:
            parser.set_defaults(**inherited)
            known, _ = parser.parse_known_args(self.argv)
        model_class = models.find_model_using_name(known.model)
        parser = model_class.modify_commandline_options(parser, self.is_train)
        if inherited:  # again: a model's own flags (added just now) take their inherited values too
            parser.set_defaults(**inherited)
        known, _ = parser.parse_known_args(self.argv)
        presets = model_class.preset_defaults(known, self.is_train)  # e.g. --CUT_mode FastCUT's defaults
        if presets:
            parser.set_defaults(**presets)
            known, _ = parser.parse_known_args(self.argv)
        parser = data.get_option_setter(known.dataset_mode)(parser, self.is_train)
        self.parser = parser
        return parser.parse_args(self.argv)

    def inherited_defaults(self, known: argparse.Namespace) -> dict:
        """Defaults taken from elsewhere (test.py: the trained run's architecture); none here."""
        return {}

    def parse(self) -> argparse.Namespace:
        """The options, checked and completed (gpu_ids as a list, suffix applied). Never changed later."""
        opt = self.gather_options()
        opt.is_train = self.is_train
        if opt.suffix:
            opt.name = f"{opt.name}_{opt.suffix.format(**vars(opt))}"
        opt.gpu_ids = parse_gpu_ids(opt.gpu_ids)
        if len(opt.gpu_ids) > 1 and not launched_by_torchrun():
            count = len(opt.gpu_ids)
            print(
                f"--gpu_ids {','.join(map(str, opt.gpu_ids))}: one process trains on cuda:{opt.gpu_ids[0]} only. "
                f"For all {count} GPUs run `torchrun --nproc_per_node={count} train.py ...` "
                "(select GPUs with CUDA_VISIBLE_DEVICES; see docs/speed.md)."
            )
        if opt.batch_size < 1:
            raise UserError(f"--batch_size {opt.batch_size}: must be at least 1")
        if opt.num_threads < 0:
            raise UserError(f"--num_threads {opt.num_threads}: must be 0 or more")
        self.opt = opt
        return opt

    def format_options(self, opt: argparse.Namespace) -> str:
        """All options, one per line, non-defaults marked with their default."""
        lines = ["----------------- Options ---------------"]
        for key, value in sorted(vars(opt).items()):
            default = self.parser.get_default(key)
            mark = f"\t[default: {default}]" if default is not None and value != default else ""
            lines.append(f"{key:>25}: {value!s:<30}{mark}")
        lines.append("----------------- End -------------------")
        return "\n".join(lines)

    def save_options(self, opt: argparse.Namespace, phase: str) -> None:
        """Write ``<phase>_opt.txt`` (humans) and ``opt.json`` (programs) into checkpoints/<name>.

        Only the main process writes (under torchrun the others return at once).
        """
        if not is_main_process():
            return
        folder = os.path.join(opt.checkpoints_dir, opt.name)
        os.makedirs(folder, exist_ok=True)
        write_text_atomic(os.path.join(folder, f"{phase}_opt.txt"), self.format_options(opt) + "\n")
        if phase == "train":
            options = {k: v for k, v in vars(opt).items() if k != "gpu_ids"}
            write_text_atomic(os.path.join(folder, "opt.json"), json.dumps(options, indent=1, default=str))


def parse_gpu_ids(value: Optional[str]) -> list[int]:
    """'0,1' -> [0, 1]; '-1' -> [] (CPU); None -> [0] when CUDA is available, else [] with a notice."""
    import torch

    if value is None:
        if torch.cuda.is_available():
            return [0]
        print("No CUDA device found: running on the CPU (--gpu_ids -1 silences this notice).")
        return []
    try:
        ids = [int(x) for x in str(value).split(",") if x.strip() != ""]
    except ValueError:
        raise UserError(f"--gpu_ids {value}: give device numbers like 0 or 0,1, or -1 for the CPU") from None
    ids = [i for i in ids if i >= 0]
    if ids and not torch.cuda.is_available():
        raise UserError(f"--gpu_ids {value}: no CUDA device is available; use --gpu_ids -1 for the CPU")
    if ids and max(ids) >= torch.cuda.device_count():
        raise UserError(f"--gpu_ids {value}: only {torch.cuda.device_count()} CUDA device(s) here")
    return ids
