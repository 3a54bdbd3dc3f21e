"""Train an image-to-image translation model.

    python train.py --dataroot ./datasets/horse2zebra --name h2z --model sc                          # FSeSim
    python train.py --dataroot ./datasets/horse2zebra --name h2z_l --model sc --learned_attn --augment  # LSeSim
    python train.py ... --continue_train                     # resume 'latest' exactly where it stopped
    torchrun --nproc_per_node=4 train.py ...                 # 4 GPUs, DDP; --batch_size is per process

Checkpoints, loss_log.txt and web/index.html go to checkpoints/<name>/ (written by rank 0 only).
Ctrl-C saves 'latest'. One save's files become current together (util/commit.py); a step whose
losses or gradients are not finite is skipped, and --max_nonfinite_steps of them in a row stop the
run; one train.py at a time per checkpoints/<name>/ (util/run_lock.py). See docs/training.md.
"""

import contextlib
import os
import sys
import time
from typing import Any, Callable

from tqdm import tqdm

from data import create_dataset
from models import batch_extras, create_model
from options.train_options import TrainOptions
from util import dist
from util.checkpoint import load_training_checkpoint, new_counters, save_training_checkpoint
from util.seeding import seed_everything
from util.commit import recover_saves
from util.errors import UserError, run_cli
from util.logger import Logger
from util.loss_meter import LossMeter, wait_for_device
from util.run_lock import RunLock


def crossed(count: int, step: int, freq: int) -> bool:
    """Whether adding ``step`` to reach ``count`` crossed a multiple of ``freq``."""
    return freq > 0 and count // freq != (count - step) // freq


def start_counters(model: Any, logger: Logger, opt: Any) -> dict:
    """A new run's counters (from epoch ``--epoch_count``, default 1), or the resumed run's."""
    if not opt.continue_train:
        return new_counters(1 if opt.epoch_count is None else opt.epoch_count)  # checked by TrainOptions
    counters = load_training_checkpoint(model, logger, opt)
    dist.print0(
        f"resuming at epoch {counters['epoch']}, step {counters['batch']} of the epoch ({counters['steps']} steps done)"
    )
    return counters


class NonFiniteGuard:
    """Counts the steps whose losses or gradients were not finite (skipped by the model, see
    BaseModel.apply_step), logs each, and stops the run at ``limit`` of them in a row."""

    def __init__(self, limit: int, save_dir: str, write: Callable[[str], Any]) -> None:
        self.limit, self.save_dir, self.write = limit, save_dir, write
        self.in_a_row = 0

    def finite(self, names: list[str], counters: dict) -> bool:
        """True for a finite step; else count and log it, and UserError (one line) at the limit."""
        if not names:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        counters["nonfinite"] = counters.get("nonfinite", 0) + 1
        where = f"step {counters['steps']} (epoch {counters['epoch']}, step {counters['batch']} of the epoch)"
        if self.in_a_row >= self.limit:
            raise UserError(
                f"{where}: {', '.join(names)} not finite in {self.in_a_row} steps in a row "
                f"(--max_nonfinite_steps {self.limit}): training stopped; 'latest' in {self.save_dir} "
                "holds the last finite state (resume it with --continue_train, with a lower --lr or "
                "--amp off and --allow_option_change)"
            )
        self.write(
            f"{where}: {', '.join(names)} not finite: step skipped ({self.in_a_row} in a row, "
            f"{counters['nonfinite']} in all; --max_nonfinite_steps {self.limit})"
        )
        return False


def guarded_step(model: Any, batch: dict, counters: dict) -> list[str]:
    """One training step; returns the names of the losses (or gradients) that were not finite, [] if none
    (the model then applied none of the step: see BaseModel.begin_step / apply_step / end_step)."""
    model.set_input(batch)
    model.begin_step()
    model.optimize_parameters()
    return model.end_step()  # known on the host: the guard syncs once per optimiser


def show_step(
    model: Any,
    logger: Logger,
    meter: LossMeter,
    opt: Any,
    counters: dict,
    size: int,
    num_batches: int,
    times: tuple[float, float],
    write: Callable[[str], Any],
) -> None:
    """Print the losses every --print_freq images and show pictures every --display_freq; ``size``: images
    in this step (all processes), ``times``: (seconds of the step, seconds waiting for its batch)."""
    images, epoch = counters["images"], counters["epoch"]
    if crossed(images, size, opt.print_freq):
        losses = meter.latest()  # the one host sync (and all-reduce) between prints
        per_step = opt.batch_size * dist.get_world_size()
        write(
            logger.log_scalars(
                epoch,
                counters["batch"] / num_batches,
                counters["batch"] * per_step,
                losses,
                times[0] / size,
                times[1] / size,
                step=images,
            )
        )
    if crossed(images, size, opt.display_freq):
        model.compute_visuals()
        logger.log_images(
            epoch, model.get_current_visuals(), save_result=crossed(images, size, opt.update_html_freq), step=images
        )


def take_folder(opt: Any) -> contextlib.AbstractContextManager:
    """Lock checkpoints/<name>/ for this run (rank 0; UserError if another train.py holds it) and finish
    or remove a save that a previous process left half done. Returns the lock, to be released at the end."""
    if not dist.is_main_process():
        dist.barrier()  # rank 0 recovers the folder first
        return contextlib.nullcontext()
    folder = os.path.join(opt.checkpoints_dir, opt.name)
    lock = RunLock(folder)
    notice = lock.acquire()
    if notice:
        print(notice, flush=True)
    try:
        for note in recover_saves(folder):
            print(f"{folder}: {note}", flush=True)
    except BaseException:
        lock.release()
        raise
    dist.barrier()
    return lock


def main() -> None:
    # Options, processes (torchrun), the run's folder locked, seed (the same on every process), data, model, logger.
    options = TrainOptions()
    opt = options.parse()
    dist.init_distributed(opt.gpu_ids)
    with take_folder(opt):
        train(options, opt)


def train(options: TrainOptions, opt: Any) -> None:
    """The training loop of main(), in the locked folder."""
    world = dist.get_world_size()
    seed_everything(opt.seed)
    dataset = create_dataset(opt, dist.get_rank(), world, extras=batch_extras(opt))
    model = create_model(opt)
    model.setup()
    logger = Logger(
        log_dir=model.save_dir,
        name=opt.name,
        display_id=opt.display_id,
        display_server=opt.display_server,
        display_port=opt.display_port,
        display_env=opt.display_env,
        display_ncols=opt.display_ncols,
        display_winsize=opt.display_winsize,
        use_html=not opt.no_html,
        is_main_process=dist.is_main_process(),
        tensorboard=opt.tensorboard,
        use_wandb=opt.use_wandb,
        wandb_project=opt.wandb_project_name,
        config=vars(opt),
    )
    each = f" on each of {world} processes" if world > 1 else ""
    dist.print0(
        f"{len(dataset)} training images, {dataset.num_batches} steps per epoch{each}; saving to {model.save_dir}"
    )

    # Resume (counters, weights, optimisers, schedule, pool, RNGs; the options checked), then the schedule:
    # epochs epoch_count .. n_epochs + n_epochs_decay, as CycleGAN numbers them.
    last_epoch = opt.n_epochs + opt.n_epochs_decay
    counters = start_counters(model, logger, opt)
    if counters["epoch"] > last_epoch:
        dist.print0(
            f"nothing to train: epoch {last_epoch} (--n_epochs + --n_epochs_decay) is done; "
            "give larger ones to train longer"
        )
        dist.cleanup()
        return
    options.save_options(opt, "train")  # once the resume is known to be allowed (main process only)
    dist.print0(
        f"epochs {counters['epoch']}-{last_epoch}, {opt.lr_policy} schedule: learning rate "
        f"{model.optimizers[0].param_groups[0]['lr']:.7f} now"
    )

    interactive = sys.stderr.isatty() and dist.is_main_process()
    meter = LossMeter(model.loss_names, model.device, counters["loss_sum"])  # losses stay on the device
    write = tqdm.write if interactive else (lambda line: dist.print0(line, flush=True))
    guard = NonFiniteGuard(opt.max_nonfinite_steps, model.save_dir, write)
    saved_at: dict[str, int] = {}  # tag -> the step it was last saved at in this process

    def save(tag: str, all_ranks: bool = True) -> bool:
        """Save ``tag`` unless the latest steps were non-finite (then it keeps the last finite state)."""
        if guard.in_a_row:
            dist.print0(
                f"not saving '{tag}' after {guard.in_a_row} non-finite step(s) in a row: it keeps the last finite state"
            )
            return False
        counters["loss_sum"] = meter.epoch_sum(all_ranks)
        save_training_checkpoint(model, logger, counters, vars(opt), tag)
        saved_at[tag] = counters["steps"]
        return True

    try:
        while counters["epoch"] <= last_epoch:
            epoch = counters["epoch"]
            dataset.set_epoch(epoch, start_batch=counters["batch"])
            bar = tqdm(
                dataset,
                total=dataset.num_batches,
                initial=counters["batch"],
                disable=not interactive,
                desc=f"epoch {epoch}/{last_epoch}",
                unit="step",
                dynamic_ncols=True,
            )
            t_data = time.time()
            for batch in bar:
                # One step; a step that is printed first lets the device finish earlier ones, to time it alone.
                t_fetched = time.time()
                size = batch["A"].shape[0] * world  # images in this step, over all processes
                wait_for_device(model.device, needed=crossed(counters["images"] + size, size, opt.print_freq))
                t_start = time.time()
                nonfinite = guarded_step(model, batch, counters)
                counters["batch"] += 1
                counters["images"] += size
                counters["steps"] += 1
                if guard.finite(nonfinite, counters):  # else skipped, logged; too many in a row stop the run
                    meter.update(model.loss_parts)
                    show_step(
                        model,
                        logger,
                        meter,
                        opt,
                        counters,
                        size,
                        dataset.num_batches,
                        (time.time() - t_start, t_fetched - t_data),
                        write,
                    )
                images = counters["images"]
                if crossed(images, size, opt.save_latest_freq):
                    save("latest")
                    if opt.save_by_iter:
                        save(f"iter_{images}")
                if opt.max_iters and counters["steps"] >= opt.max_iters:
                    # not twice at one step: that would make prev_latest a copy of latest
                    saved = "saved" if saved_at.get("latest") == counters["steps"] or save("latest") else "kept"
                    dist.print0(f"reached --max_iters {opt.max_iters}: {saved} 'latest' in {model.save_dir}")
                    return
                t_data = time.time()
            bar.close()

            # End of epoch: save, step the learning rate, move on.
            if epoch % opt.save_epoch_freq == 0:
                model.save_networks(str(epoch))
            lr = model.update_learning_rate(meter.epoch_sum() / max(counters["batch"], 1))
            logger.log_epoch_end(epoch, counters["images"], model.learning_rates())
            counters.update(epoch=epoch + 1, batch=0, loss_sum=0.0)
            meter.start_epoch()
            save("latest")
            dist.print0(f"end of epoch {epoch}/{last_epoch}: {counters['steps']} steps, learning rate {lr:.7f}")
    except KeyboardInterrupt:
        saved = "saved" if save("latest", all_ranks=False) else "kept"  # others may have stopped: no all-reduce
        dist.print0(f"\ninterrupted: {saved} 'latest' in {model.save_dir}; resume with --continue_train")
        raise
    finally:
        logger.close()
        dist.cleanup()


if __name__ == "__main__":
    run_cli(main)
