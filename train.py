"""Train an image-to-image translation model.

    python train.py --dataroot ./datasets/horse2zebra --name h2z --model sc                          # FSeSim
    python train.py --dataroot ./datasets/horse2zebra --name h2z_l --model sc --learned_attn --augment  # LSeSim
    python train.py ... --continue_train                     # resume 'latest' exactly where it stopped
    torchrun --nproc_per_node=4 train.py ...                 # 4 GPUs, DDP; --batch_size is per process

Checkpoints, loss_log.txt and web/index.html go to checkpoints/<name>/ (written by rank 0 only).
Ctrl-C saves 'latest'.
"""

import sys
import time
from typing import Any

from tqdm import tqdm

from data import create_dataset
from models import create_model
from options.train_options import TrainOptions
from util import dist
from util.checkpoint import load_training_checkpoint, new_counters, save_training_checkpoint, seed_everything
from util.errors import run_cli
from util.logger import Logger
from util.loss_meter import LossMeter, wait_for_device


def crossed(count: int, step: int, freq: int) -> bool:
    """Whether adding ``step`` to reach ``count`` crossed a multiple of ``freq``."""
    return freq > 0 and count // freq != (count - step) // freq


def start_counters(model: Any, logger: Logger, opt: Any) -> dict:
    """A new run's counters (from epoch ``--epoch_count``, default 1), or the resumed run's."""
    if not opt.continue_train:
        return new_counters(1 if opt.epoch_count is None else opt.epoch_count)  # checked by TrainOptions
    counters = load_training_checkpoint(model, logger, opt)
    dist.print0(f"resuming at epoch {counters['epoch']}, step {counters['batch']} of the epoch "
                f"({counters['steps']} steps done)")
    return counters


def main() -> None:
    # Options, processes (torchrun), seed (the same on every process), data, model, logger.
    options = TrainOptions()
    opt = options.parse()
    dist.init_distributed(opt.gpu_ids)
    world = dist.get_world_size()
    seed_everything(opt.seed)
    dataset = create_dataset(opt, dist.get_rank(), world)
    model = create_model(opt)
    model.setup()
    logger = Logger(log_dir=model.save_dir, name=opt.name, display_id=opt.display_id,
                    display_server=opt.display_server, display_port=opt.display_port,
                    display_env=opt.display_env, display_ncols=opt.display_ncols,
                    display_winsize=opt.display_winsize, use_html=not opt.no_html,
                    is_main_process=dist.is_main_process(), tensorboard=opt.tensorboard,
                    use_wandb=opt.use_wandb, wandb_project=opt.wandb_project_name, config=vars(opt))
    each = f" on each of {world} processes" if world > 1 else ""
    dist.print0(f"{len(dataset)} training images, {dataset.num_batches} steps per epoch{each}; "
                f"saving to {model.save_dir}")

    # Resume (counters, weights, optimisers, schedule, pool, RNGs; the options checked), then the schedule:
    # epochs epoch_count .. n_epochs + n_epochs_decay, as CycleGAN numbers them.
    last_epoch = opt.n_epochs + opt.n_epochs_decay
    counters = start_counters(model, logger, opt)
    if counters["epoch"] > last_epoch:
        dist.print0(f"nothing to train: epoch {last_epoch} (--n_epochs + --n_epochs_decay) is done; "
                    "give larger ones to train longer")
        dist.cleanup()
        return
    options.save_options(opt, "train")  # once the resume is known to be allowed (main process only)
    dist.print0(f"epochs {counters['epoch']}-{last_epoch}, {opt.lr_policy} schedule: learning rate "
                f"{model.optimizers[0].param_groups[0]['lr']:.7f} now")

    meter = LossMeter(model.loss_names, model.device, counters["loss_sum"])  # losses stay on the device

    def save(tag: str, all_ranks: bool = True) -> None:
        counters["loss_sum"] = meter.epoch_sum(all_ranks)
        save_training_checkpoint(model, logger, counters, vars(opt), tag)

    interactive = sys.stderr.isatty() and dist.is_main_process()
    try:
        while counters["epoch"] <= last_epoch:
            epoch = counters["epoch"]
            dataset.set_epoch(epoch, start_batch=counters["batch"])
            bar = tqdm(dataset, total=dataset.num_batches, initial=counters["batch"], disable=not interactive,
                       desc=f"epoch {epoch}/{last_epoch}", unit="step", dynamic_ncols=True)
            t_data = time.time()
            for batch in bar:
                # One step; a step that is printed first lets the device finish earlier ones, to time it alone.
                t_fetched = time.time()
                size = batch["A"].shape[0] * world  # images in this step, over all processes
                wait_for_device(model.device, needed=crossed(counters["images"] + size, size, opt.print_freq))
                t_start = time.time()
                model.set_input(batch)
                model.optimize_parameters()
                counters["batch"] += 1
                counters["images"] += size
                counters["steps"] += 1
                meter.update(model.loss_parts)

                # Logging, display, saving.
                images = counters["images"]
                if crossed(images, size, opt.print_freq):
                    losses = meter.latest()  # the one host sync (and all-reduce) between prints
                    line = logger.log_scalars(epoch, counters["batch"] / dataset.num_batches,
                                              counters["batch"] * opt.batch_size * world, losses,
                                              (time.time() - t_start) / size, (t_fetched - t_data) / size,
                                              step=images)
                    tqdm.write(line) if interactive else dist.print0(line, flush=True)
                if crossed(images, size, opt.display_freq):
                    model.compute_visuals()
                    logger.log_images(epoch, model.get_current_visuals(),
                                      save_result=crossed(images, size, opt.update_html_freq), step=images)
                if crossed(images, size, opt.save_latest_freq):
                    save("latest")
                    if opt.save_by_iter:
                        save(f"iter_{images}")
                if opt.max_iters and counters["steps"] >= opt.max_iters:
                    save("latest")
                    dist.print0(f"reached --max_iters {opt.max_iters}: saved 'latest' in {model.save_dir}")
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
        save("latest", all_ranks=False)  # other processes may have stopped: no all-reduce
        dist.print0(f"\ninterrupted: saved 'latest' in {model.save_dir}; resume with --continue_train")
        raise
    finally:
        logger.close()
        dist.cleanup()


if __name__ == "__main__":
    run_cli(main)
