"""Training options: display, saving, resuming, schedule and optimiser."""

import argparse

from models.losses import GAN_MODES
from options.base_options import BaseOptions
from util.errors import UserError

LR_POLICIES = ("linear", "step", "plateau", "cosine")


def add_tracker_options(parser: argparse.ArgumentParser) -> None:
    """--tensorboard, --use_wandb and --wandb_project_name (train.py and test_fid.py)."""
    g = parser.add_argument_group("experiment trackers (optional packages: pip install tensorboard wandb)")
    g.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="TensorBoard event files in checkpoints/<name>/tensorboard (step: training images seen)",
    )
    g.add_argument(
        "--use_wandb",
        action="store_true",
        help="log to Weights & Biases (WANDB_MODE=offline: local files only, `wandb sync` later)",
    )
    g.add_argument("--wandb_project_name", default="sesim", help="W&B project")


class TrainOptions(BaseOptions):
    """``opt = TrainOptions().parse()`` in train.py."""

    is_train = True

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("display")
        g.add_argument(
            "--display_id", type=int, default=0, help="visdom window id; 0 or -1 disables visdom (the default)"
        )
        g.add_argument("--display_server", default="http://localhost", help="visdom server")
        g.add_argument("--display_env", default="main", help="visdom environment")
        g.add_argument("--display_port", type=int, default=8097, help="visdom port")
        g.add_argument("--display_ncols", type=int, default=4, help="images per row in visdom")
        g.add_argument("--display_freq", type=int, default=400, help="show results every N images")
        g.add_argument("--update_html_freq", type=int, default=1000, help="save results to HTML every N images")
        g.add_argument("--print_freq", type=int, default=100, help="print losses every N images")
        g.add_argument("--no_html", action="store_true", help="no web/index.html")
        add_tracker_options(parser)
        g = parser.add_argument_group("saving and resuming")
        g.add_argument("--save_latest_freq", type=int, default=5000, help="save 'latest' every N images")
        g.add_argument("--save_epoch_freq", type=int, default=10, help="save <epoch>_net_*.pth every N epochs")
        g.add_argument("--save_by_iter", action="store_true", help="also keep iter_<N> checkpoints")
        g.add_argument(
            "--continue_train",
            action="store_true",
            help="resume from the 'latest' (or --epoch) training state: counters restored by themselves",
        )
        g.add_argument(
            "--epoch_count",
            type=int,
            default=None,
            help="number of the first epoch to train (CycleGAN's meaning; the last is always "
            "n_epochs + n_epochs_decay). Default: 1, or where --continue_train left off",
        )
        g.add_argument(
            "--allow_option_change",
            action="store_true",
            help="--continue_train even when options that alter the model, loss or data order changed",
        )
        g.add_argument(
            "--max_iters",
            type=int,
            default=0,
            help="stop after this many training steps in total, saving 'latest' (0: no limit)",
        )
        g.add_argument(
            "--max_nonfinite_steps",
            type=int,
            default=3,
            help="stop after this many steps in a row whose losses or gradients are NaN or infinite "
            "(each such step is skipped, not applied, and 'latest' keeps the last finite state)",
        )
        g.add_argument("--phase", default="train", help="train, val, test, ...")
        g = parser.add_argument_group("schedule and optimiser")
        g.add_argument("--n_epochs", type=int, default=200, help="epochs at the initial learning rate")
        g.add_argument("--n_epochs_decay", type=int, default=200, help="epochs of linear decay to zero")
        g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
        g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
        g.add_argument("--lr", type=float, default=0.0001, help="initial Adam learning rate")
        g.add_argument("--gan_mode", default="lsgan", choices=list(GAN_MODES), help="GAN objective")
        g.add_argument("--pool_size", type=int, default=50, help="image pool size for D (0: no pool)")
        g.add_argument("--lr_policy", default="linear", choices=list(LR_POLICIES))
        g.add_argument("--lr_decay_iters", type=int, default=50, help="step policy: decay every N epochs")
        g.add_argument(
            "--lr_decay_gamma",
            type=float,
            default=0.1,
            help="step policy: multiply the rate by this every --lr_decay_iters epochs (MUNIT: 0.5)",
        )
        return parser

    def parse(self) -> argparse.Namespace:
        """The options; UserError when ``--epoch_count`` is not an epoch of the schedule."""
        opt = super().parse()
        last = opt.n_epochs + opt.n_epochs_decay
        if opt.epoch_count is not None and not 1 <= opt.epoch_count <= last:
            raise UserError(
                f"--epoch_count {opt.epoch_count}: must be from 1 to {last} (--n_epochs + --n_epochs_decay)"
            )
        if opt.max_nonfinite_steps < 1:
            raise UserError(f"--max_nonfinite_steps {opt.max_nonfinite_steps}: must be at least 1")
        return opt
