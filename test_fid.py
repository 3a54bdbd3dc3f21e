"""Score every saved epoch of a run: FID, KID and density & coverage against all real images.

    python test_fid.py --dataroot ./datasets/horse2zebra --name h2z --model sc
    python test_fid.py ... --inception_weights ./pt_inception-2015-12-05-6726825d.pth   # no download
    python test_fid.py ... --features efficientnet_lite0   # offline; NOT comparable with published FIDs

For each epoch E with a checkpoint of the model's first network, checkpoints/<name>/E_net_G.pth
(E_net_G_A.pth for cycle_gan and mmsc, E_net_G_B.pth for cycle_gan against its trained direction; ``--epochs
all``, the default, or a list such as ``--epochs 100,200,latest``) it translates every image of the test split
through the inference package's loader and loop, exactly as test.py does (inference/translator.py), into
<results_dir>/<name>/fid_<phase>/epoch_<E>/, scores them against every image of ``--real_dir``
(default <dataroot>/<phase>B, or <phase>A with --direction BtoA), and rewrites fid.csv and fid.png
in <results_dir>/<name>/fid_<phase>/ after each epoch. The real features are computed once and
cached in ``--stats_cache`` under a key of the folder's content and the network's weights.
Prints the best epoch (lowest FID). Every argument (the epochs, --real_dir, --paired, --prdc_k against the
real and generated image counts) is checked before the first image is translated.

A model with several translations per input (``--model mmsc``: test visuals ``fake_B_1`` ...
``fake_B_K``, K = ``--n_styles`` or one per ``--style_image``) has ALL K outputs of each input saved,
as <input name>_<k>.png, and FID/KID/density-coverage are computed over the K x N images (as the
multimodal literature does). Each epoch's row then also holds ``lpips_diversity``: the mean over the
inputs of the mean LPIPS between all pairs of that input's K saved outputs (higher = more diverse;
evaluations/lpips.py). Its VGG16 backbone is ``--lpips_weights`` (as ``--vgg_weights``: imagenet = the
torch hub cache file, or a path); only torchvision's ImageNet VGG16 gives scores comparable with
published LPIPS, and the run prints which backbone it used. ``--no_lpips`` skips it, and so does K = 1.

With ``--tensorboard`` and/or ``--use_wandb`` the scores also go to the training run's TensorBoard
folder (checkpoints/<name>/tensorboard) and W&B run, as ``fid_<phase>/<score>`` at the step where the
epoch's checkpoint was saved (training images seen, as recorded in latest_train_state.pth).
"""

import argparse
import os
import re

from tqdm import tqdm

from data import create_dataset
from evaluations.features import FEATURES, build_feature_extractor, cached_folder_features, compute_features
from evaluations.features import list_images
from evaluations.lpips import LPIPSVGG, load_images
from evaluations.paired import paired_scores
from evaluations.realism import check_counts, realism_scores
from evaluations.report import best_row, plot_scores, write_scores_csv
from inference import Translator
from models import batch_extras, find_model_using_name
from models.sesim import VGGWeightsError
from options.test_options import TestOptions
from options.train_options import add_tracker_options
from util.checkpoint import safe_load, state_path
from util.errors import UserError, run_cli
from util.image_io import save_image
from util.trackers import (
    TENSORBOARD_INSTALL_HINT,
    WANDB_INSTALL_HINT,
    Tracker,
    new_wandb_run_id,
    open_trackers,
    tracker_available,
)


class FIDOptions(TestOptions):
    """TestOptions plus the feature network, the real set, the epochs and the score settings."""

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        g = parser.add_argument_group("fid")
        g.add_argument(
            "--features",
            default="inception",
            choices=sorted(FEATURES),
            help="inception: pytorch-fid's (published FIDs); efficientnet_lite0: offline, not comparable",
        )
        g.add_argument(
            "--inception_weights",
            default=None,
            help="pt_inception-2015-12-05-6726825d.pth; default: pytorch-fid's download / torch hub cache",
        )
        g.add_argument(
            "--feature_weights",
            default=None,
            help="EfficientNet-Lite0 weights; default: the torch hub cache "
            "(python scripts/download_efficientnet_lite0.py)",
        )
        g.add_argument(
            "--dims",
            type=int,
            default=2048,
            choices=[64, 192, 768, 2048],
            help="Inception feature block (2048 = pool3, the standard)",
        )
        g.add_argument("--real_dir", default=None, help="real images; default <dataroot>/<phase>B (A with BtoA)")
        g.add_argument("--epochs", default="all", help="'all' saved numeric epochs, or a list like 5,10,latest")
        g.add_argument("--stats_cache", default=None, help="default <checkpoints_dir>/fid_stats_cache")
        g.add_argument("--fid_batch_size", type=int, default=50, help="images per feature-network pass")
        g.add_argument("--kid_subsets", type=int, default=100, help="KID: number of random subsets")
        g.add_argument("--kid_subset_size", type=int, default=1000, help="KID: subset size (capped by the sets)")
        g.add_argument("--prdc_k", type=int, default=5, help="density & coverage neighbours (paper: 95); 0 skips")
        g.add_argument(
            "--paired",
            action="store_true",
            help="also SSIM/PSNR against the real image of the same name (sets with ground truth)",
        )
        g.add_argument(
            "--lpips_weights",
            default="imagenet",
            help="multi-output models: VGG16 of the LPIPS diversity (as --vgg_weights: imagenet = "
            "torch hub cache file, or a path); only torchvision's compares with published LPIPS",
        )
        g.add_argument("--no_lpips", action="store_true", help="multi-output models: skip the LPIPS diversity")
        add_tracker_options(parser)
        parser.set_defaults(num_test=0)
        return parser


def saved_epochs(save_dir: str, wanted: str, net: str = "G") -> list[str]:
    """Epoch tags to score: every numeric ``<tag>_net_<net>.pth`` in order for 'all', else the list given.

    ``net`` is the model's first test network (its class's ``test_networks[0]``: G, or G_A for cycle_gan and mmsc).
    """
    suffix = f"_net_{net}.pth"
    tags = (
        [name[: -len(suffix)] for name in os.listdir(save_dir) if name.endswith(suffix)]
        if os.path.isdir(save_dir)
        else []
    )
    if wanted == "all":
        found = sorted((t for t in tags if t.isdigit()), key=int)
        if not found:
            raise UserError(
                f"--epochs all: no <epoch>{suffix} in {save_dir} (train with --save_epoch_freq, "
                "or give --epochs latest)"
            )
        return found
    found = [t.strip() for t in wanted.split(",") if t.strip()]
    missing = [t for t in found if t not in tags]
    if not found or missing:
        raise UserError(
            f"--epochs {wanted}: no {', '.join(missing) or 'epoch'} checkpoint (<epoch>{suffix}) in "
            f"{save_dir} (saved: {', '.join(sorted(tags)) or 'none'})"
        )
    return found


def tracker_steps(save_dir: str) -> tuple[dict[str, int], str | None]:
    """Each checkpoint tag's step on the training run's axis (training images seen when it was saved),
    and the run's W&B id (None if it had none), from <save_dir>/latest_train_state.pth."""
    path = state_path(save_dir, "latest")
    if not os.path.isfile(path):
        raise UserError(
            f"--tensorboard/--use_wandb: {path} does not exist (scores are logged at the steps "
            "the training run recorded there)"
        )
    state = safe_load(path, "training state")
    logger = state.get("logger", {})
    steps = {str(epoch): int(step) for epoch, step in logger.get("epoch_steps", {}).items()}
    steps["latest"] = int(state["counters"]["images"])
    return steps, logger.get("wandb_run_id")


def open_score_trackers(opt: argparse.Namespace, save_dir: str) -> tuple[list[Tracker], dict[str, int]]:
    """The training run's TensorBoard folder and W&B run (those asked for), and each tag's step."""
    if not (opt.tensorboard or opt.use_wandb):
        return [], {}
    steps, run_id = tracker_steps(save_dir)
    tensorboard = opt.tensorboard and tracker_available("tensorboard", TENSORBOARD_INSTALL_HINT)
    use_wandb = opt.use_wandb and tracker_available("wandb", WANDB_INSTALL_HINT)
    trackers = open_trackers(
        log_dir=save_dir,
        name=opt.name,
        tensorboard=tensorboard,
        wandb_run_id=(run_id or new_wandb_run_id()) if use_wandb else None,
        wandb_project=opt.wandb_project_name,
    )
    return trackers, steps


def track_scores(trackers: list[Tracker], steps: dict[str, int], epoch: str, row: dict, phase: str) -> None:
    """Send one epoch's float scores to the trackers at that checkpoint's step (``iter_<N>``: step N)."""
    if not trackers:
        return
    by_iter = re.fullmatch(r"iter_(\d+)", epoch)
    step = int(by_iter.group(1)) if by_iter else steps.get(epoch)
    if step is None:
        tqdm.write(
            f"epoch {epoch}: latest_train_state.pth records no step for it (a run trained before "
            "TensorBoard/W&B support?); its scores are not sent to TensorBoard/W&B"
        )
        return
    values = {f"fid_{phase}/{key}": value for key, value in row.items() if isinstance(value, float)}
    for tracker in trackers:
        tracker.log_scalars(step, values)


def output_count(opt: argparse.Namespace) -> int | None:
    """How many translations of each input the test options ask for: K for a model with several outputs per
    input (mmsc: ``--n_styles`` or one per ``--style_image``), None for a one-output model."""
    model_class = find_model_using_name(opt.model)
    return model_class.output_count(opt) if model_class.multi_output else None


def translate(
    translator: Translator, dataset: object, folder: str, limit: int, groups: list[list[str]] | None = None
) -> str:
    """Write the translations of the first ``limit`` test inputs into ``folder`` (old images removed) through
    the translator's one loop: <input name>.png, or, for a model with K outputs per input, all K of them as
    <input name>_<k>.png. ``groups``, when given, receives each input's list of written files."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".png"):
            os.remove(os.path.join(folder, name))
    for result in translator.run_dataset(dataset, limit):
        stem = os.path.join(folder, os.path.splitext(os.path.basename(result.path))[0])
        numbered = translator.multi_output
        written = [f"{stem}_{k}.png" for k in range(1, len(result.outputs) + 1)] if numbered else [stem + ".png"]
        for image, file in zip(result.outputs, written):
            save_image(image, file)
        if groups is not None:
            groups.append(written)
    return folder


def lpips_metric(opt: argparse.Namespace, device: str) -> LPIPSVGG | None:
    """The LPIPS diversity metric for a model with K >= 2 outputs per input (None otherwise, with a
    note when K = 1); prints its backbone note once."""
    count = output_count(opt)
    if count is None or opt.no_lpips:
        return None
    if count < 2:
        print("LPIPS diversity: skipped, the model gives one output per input (use --n_styles 2 or more)")
        return None
    try:
        metric = LPIPSVGG(weights=opt.lpips_weights).to(device)
    except VGGWeightsError as exc:
        raise UserError(f"--lpips_weights {opt.lpips_weights}: {exc} (or give --no_lpips)") from None
    print(f"LPIPS diversity: {metric.note}")
    return metric


def checked_arguments(opt: argparse.Namespace, save_dir: str) -> tuple[list[str], str, object, int]:
    """Every argument checked before anything is translated, each mistake one line: the epochs' checkpoints,
    --paired, --real_dir, the test split and --prdc_k against the real and generated image counts. Returns
    (epochs, real_dir, dataset, inputs to translate)."""
    epochs = saved_epochs(save_dir, opt.epochs, Translator.epoch_network(opt))
    count = output_count(opt)
    if opt.paired and count is not None:
        raise UserError(
            f"--paired: --model {opt.model} gives {count} outputs per input; paired scores compare "
            "one translation with the real image of the same name"
        )
    real_dir = opt.real_dir or os.path.join(opt.dataroot, opt.phase + ("A" if opt.direction == "BtoA" else "B"))
    real_count = len(list_images(real_dir, option="--real_dir"))
    dataset = create_dataset(opt, extras=batch_extras(opt))
    inputs = min(opt.num_test, len(dataset)) if opt.num_test > 0 else len(dataset)
    check_counts(real_count, inputs * (count or 1), opt.prdc_k)
    return epochs, real_dir, dataset, inputs


def main() -> None:
    # Options, checked whole before any work; the feature network and the (cached) real features.
    opt = FIDOptions().parse()
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    epochs, real_dir, dataset, limit = checked_arguments(opt, save_dir)
    translator = Translator.from_options(opt, epoch=epochs[0])
    device = f"cuda:{opt.gpu_ids[0]}" if opt.gpu_ids else "cpu"
    weights = opt.inception_weights if opt.features == "inception" else opt.feature_weights
    extractor = build_feature_extractor(opt.features, weights=weights, dims=opt.dims, device=device)
    print(f"features: {extractor.description}")
    real = cached_folder_features(
        real_dir,
        extractor,
        opt.stats_cache or os.path.join(opt.checkpoints_dir, "fid_stats_cache"),
        opt.fid_batch_size,
        device,
        option="--real_dir",
    )
    print(f"real images: {len(real)} in {real_dir}")

    # Translate the test split with every epoch's generator, score, and rewrite the table and plot.
    diversity = lpips_metric(opt, device)
    out_dir = os.path.join(opt.results_dir, opt.name, f"fid_{opt.phase}")
    title = f"{opt.name} ({opt.phase}, {len(real)} real images): {extractor.description}"
    rows = []
    trackers, steps = open_score_trackers(opt, save_dir)
    try:
        for epoch in tqdm(epochs, desc="epochs", unit="epoch"):
            if epoch != translator.epoch:
                translator.use_epoch(epoch)
            groups: list[list[str]] = []
            folder = translate(translator, dataset, os.path.join(out_dir, f"epoch_{epoch}"), limit, groups)
            fake = compute_features(list_images(folder), extractor, opt.fid_batch_size, device)
            row = {
                "epoch": epoch,
                "images": len(fake),
                **realism_scores(real, fake, opt.kid_subsets, opt.kid_subset_size, opt.prdc_k, seed=opt.seed),
            }
            if opt.paired:
                row.update(paired_scores(folder, real_dir)["mean"])
            if diversity is not None:
                row["lpips_diversity"] = diversity.mean_diversity(
                    (load_images(paths) for paths in groups), progress=True, total=len(groups)
                )
            rows.append(row)
            write_scores_csv(rows, os.path.join(out_dir, "fid.csv"))
            plot_scores(rows, os.path.join(out_dir, "fid.png"), title)
            track_scores(trackers, steps, epoch, row, opt.phase)
            tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))
    finally:
        for tracker in trackers:
            tracker.close()
    best = best_row(rows)
    print(f"scores: {os.path.join(out_dir, 'fid.csv')} and fid.png")
    print(f"best epoch: {best['epoch']} (FID {best['fid']:.3f}, {opt.features} features)")


if __name__ == "__main__":
    run_cli(main)
