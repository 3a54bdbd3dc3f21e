"""Where does each loss see a difference? Per-location error maps of a source against targets.

    python scripts/error_map.py --source datasets/photo2painting/testA/home_0.jpg \
        --targets datasets/photo2painting/testB/home_0.jpg datasets/photo2painting/testB/tree_0.jpg \
        --output docs/error_map.png

For each target (one or two: typically the source's own translation, aligned with it, and another
image's translation, not aligned) it renders, as one row of a PNG grid with colour bars, the maps of
pixel L1, perceptual L1 (VGG16 relu3_3), PatchNCE-style cosine distance of the VGG features at the
same location, and the spatially-correlative loss with every location as a query (its loss placed
at its location). Each column shares one colour scale across rows. Prints the mean of every map
(each equals its loss) and, for two targets, how many times larger the second row's mean is.

    python scripts/error_map.py --pair_folders datasets/photo2painting/testA datasets/photo2painting/testB

summarises instead every source of the first folder against every target of the second: aligned
pairs share a file name, all other pairs are unaligned. For each loss it prints the mean aligned and
unaligned values, their ratio, and the separation d' = (mean_u - mean_a) / sqrt((var_u + var_a) / 2).

    python scripts/error_map.py ... --heads checkpoints/<run>/latest_net_F.pth

draws the spatially-correlative map with the learned LSeSim heads of a run (the published error-map
figure is LSeSim's): each layer's VGG16 features pass through the run's 1x1 head before the
self-similarities are compared. ``--attn_layers`` must be the run's.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from evaluations.error_maps import (
    cosine_distance_map,
    feature_l1_map,
    pixel_l1_map,
    spatial_loss_map,
)
from models.sesim import LAYER_NAMES, SpatialCorrelativeLoss, VGG16Features, VGGWeightsError
from util.checkpoint import load_state_dict_checked, safe_load
from util.errors import UserError, run_cli
from util.image_io import atomic_path

COLUMNS = ("pixel L1", "perceptual L1", "PatchNCE cosine distance", "spatially-correlative loss")


def load(path: str, size: int) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]; resized (bicubic) to size x size when size > 0."""
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist")
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size > 0 and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def load_heads(path: str, vgg: VGG16Features, attn_layers: list[int]) -> list[torch.nn.Module]:
    """The learned 1x1 heads of an LSeSim run's ``net_F`` file, one per attention layer."""
    channels = [vgg.out_channels[vgg.layers.index(i)] for i in attn_layers]
    holder = SpatialCorrelativeLoss(learned=True, in_channels=channels)
    load_state_dict_checked(holder, safe_load(path, "--heads"), path)
    return [head.eval() for head in holder.heads()]


def error_maps(
    source: torch.Tensor,
    target: torch.Tensor,
    vgg: VGG16Features,
    feature_layer: int,
    attn_layers: list[int],
    loss: SpatialCorrelativeLoss,
    heads: list[torch.nn.Module] | None = None,
) -> list[np.ndarray]:
    """The four (h, w) maps of COLUMNS for one source/target pair (the last through ``heads`` if given)."""
    if source.shape != target.shape:
        raise UserError(
            f"source and target sizes differ ({tuple(source.shape[-2:])} vs {tuple(target.shape[-2:])}); pass --size"
        )
    with torch.no_grad():
        feats = vgg(torch.cat([source, target]))
        by_layer = dict(zip(vgg.layers, feats))
        fs, ft = by_layer[feature_layer].chunk(2)
        attn = [by_layer[i] for i in attn_layers]
        attn = [head(f) for head, f in zip(heads, attn)] if heads else attn
        spatial = spatial_loss_map([f[:1] for f in attn], [f[1:] for f in attn], loss)
        maps = [pixel_l1_map(source, target), feature_l1_map(fs, ft), cosine_distance_map(fs, ft), spatial]
    return [m.cpu().numpy() for m in maps]


def draw(
    images: list[np.ndarray], names: list[str], rows: list[list[np.ndarray]], titles: list[str], path: str
) -> None:
    """Grid: column 0 the source (row 0) / blank, column 1 each target, then one column per map."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.0 * (2 + len(COLUMNS)), 3.3 * len(rows)), dpi=90)
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(rows), 2 + len(COLUMNS), squeeze=False)
    top = [max(float(row[c].max()) for row in rows) for c in range(len(COLUMNS))]
    for r, maps in enumerate(rows):
        grid[r, 0].imshow(images[0])
        grid[r, 0].set_title(f"source: {names[0]}", fontsize=9)
        grid[r, 1].imshow(images[r + 1])
        grid[r, 1].set_title(f"target: {names[r + 1]}", fontsize=9)
        for c, values in enumerate(maps):
            shown = grid[r, 2 + c].imshow(values, cmap="magma", vmin=0.0, vmax=top[c])
            grid[r, 2 + c].set_title(f"{titles[c].replace(' (', chr(10) + '(')}\nmean {values.mean():.4f}", fontsize=9)
            figure.colorbar(shown, ax=grid[r, 2 + c], fraction=0.046, pad=0.04)
        for axes in grid[r]:
            axes.set_xticks([])
            axes.set_yticks([])
    figure.tight_layout()
    save_figure(figure, path)


def save_figure(figure: "object", path: str) -> None:
    """Render a matplotlib Figure to a palette PNG at ``path`` (atomically)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    # A 256-colour palette keeps the figure small enough to commit; the colour maps barely change.
    with Image.open(buffer) as rendered, atomic_path(path) as tmp:
        rendered.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            tmp, format="png", optimize=True
        )


def report(names: list[str], rows: list[list[np.ndarray]], titles: list[str]) -> None:
    """Print the mean of every map, one line per map, one column per target (plus the ratio)."""
    header = f"{'map':54}" + "".join(f"{Path(n).stem + ' (' + Path(n).parent.name + ')':>24}" for n in names[1:])
    print(header + (f"{'ratio':>10}" if len(rows) == 2 else ""))
    for c, title in enumerate(titles):
        means = [float(row[c].mean()) for row in rows]
        ratio = f"{means[1] / means[0]:>9.2f}x" if len(rows) == 2 and means[0] > 0 else ""
        print(f"{title:54}" + "".join(f"{m:>24.5f}" for m in means) + ratio)


def summarise(
    folder_a: str,
    folder_b: str,
    compute: "Callable[[torch.Tensor, torch.Tensor], list[np.ndarray]]",
    size: int,
    titles: list[str],
) -> None:
    """Print mean aligned / unaligned loss, ratio and d' for every map over all pairs of two folders."""
    names = sorted(set(os.listdir(folder_a)) & set(os.listdir(folder_b)))
    if len(names) < 2:
        raise UserError(f"--pair_folders: {folder_a} and {folder_b} need at least 2 images of the same names")
    sources = {n: load(os.path.join(folder_a, n), size) for n in names}
    targets = {n: load(os.path.join(folder_b, n), size) for n in names}
    means = {(a, b): [float(m.mean()) for m in compute(sources[a], targets[b])] for a in names for b in names}
    print(f"{len(names)} aligned and {len(names) * (len(names) - 1)} unaligned pairs")
    print(f"{'map':54}{'aligned':>10}{'unaligned':>11}{'ratio':>8}{'d-prime':>9}")
    for c, title in enumerate(titles):
        aligned = np.array([means[n, n][c] for n in names])
        unaligned = np.array([means[a, b][c] for a in names for b in names if a != b])
        spread = np.sqrt((aligned.var() + unaligned.var()) / 2)
        print(
            f"{title:54}{aligned.mean():>10.4f}{unaligned.mean():>11.4f}"
            f"{unaligned.mean() / aligned.mean():>7.2f}x{(unaligned.mean() - aligned.mean()) / spread:>9.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="the source image (e.g. a photo)")
    parser.add_argument("--targets", nargs="+", default=[], help="one or two target images")
    parser.add_argument(
        "--pair_folders",
        nargs=2,
        metavar=("SOURCES", "TARGETS"),
        help="summarise all pairs of two folders instead of drawing a figure",
    )
    parser.add_argument("--output", default="error_map.png", help="PNG to write")
    parser.add_argument("--size", type=int, default=0, help="resize all images to size x size (0: keep)")
    parser.add_argument("--vgg_weights", default="imagenet", help="imagenet, a path, or random (smoke tests)")
    parser.add_argument(
        "--feature_layer", default="relu3_3", choices=LAYER_NAMES, help="layer of the perceptual and PatchNCE maps"
    )
    parser.add_argument("--attn_layers", default="4,7,9", help="layers of the spatially-correlative loss")
    parser.add_argument("--patch_size", type=int, default=64, help="local key window of the loss")
    parser.add_argument("--loss_mode", default="cos", choices=["cos", "l1"], help="comparison of the loss")
    parser.add_argument("--use_norm", action="store_true", help="cosine similarity + L1 in the loss")
    parser.add_argument(
        "--heads", default=None, help="an LSeSim run's net_F file: the spatial map through its learned heads"
    )
    args = parser.parse_args()
    if args.pair_folders is None and (args.source is None or not 1 <= len(args.targets) <= 2):
        raise UserError("give --source and one or two --targets, or --pair_folders SOURCES TARGETS")
    try:
        attn_layers = [int(x) for x in args.attn_layers.split(",") if x.strip()]
        feature_layer = LAYER_NAMES.index(args.feature_layer)
        vgg = VGG16Features(layers=sorted(set(attn_layers) | {feature_layer}), weights=args.vgg_weights)
    except (ValueError, VGGWeightsError) as exc:
        raise UserError(str(exc)) from None
    loss = SpatialCorrelativeLoss(mode=args.loss_mode, patch_nums=0, patch_size=args.patch_size, use_norm=args.use_norm)
    heads = load_heads(args.heads, vgg, attn_layers) if args.heads else None
    kind = ", learned heads" if heads else ""
    titles = [
        COLUMNS[0],
        f"{COLUMNS[1]} ({args.feature_layer})",
        f"{COLUMNS[2]} ({args.feature_layer})",
        f"{COLUMNS[3]} ({','.join(LAYER_NAMES[i] for i in attn_layers)}{kind})",
    ]

    def compute(source: torch.Tensor, target: torch.Tensor) -> list[np.ndarray]:
        return error_maps(source, target, vgg, feature_layer, attn_layers, loss, heads)

    if args.pair_folders is not None:
        summarise(*args.pair_folders, compute, args.size, titles)
        return
    source = load(args.source, args.size)
    targets = [load(path, args.size) for path in args.targets]
    rows = [compute(source, target) for target in targets]
    images = [((x[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1) for x in [source] + targets]
    names = [args.source] + args.targets
    draw(images, [Path(n).parent.name + "/" + Path(n).name for n in names], rows, titles, args.output)
    report(names, rows, titles)
    print(f"figure: {args.output}")


if __name__ == "__main__":
    run_cli(main)
