"""What "structure" means to the spatially-correlative loss: self-similarity maps of query points.

    python scripts/structure_map.py --source datasets/photo2painting/testA/home_0.jpg \
        --target datasets/photo2painting/testB/home_0.jpg --output docs/structure_map.png
    python scripts/structure_map.py ... --heads checkpoints/<run>/latest_net_F.pth   # learned LSeSim heads

For each query point (``--points x,y ...`` in fractions of the width and height; by default three
points spread over the image) it draws one row: the source with the point marked, the point's
self-similarity map in the source (its cosine similarity to every location of one VGG16 layer,
after the loss's centring), the target (typically the source's translation) with the same point,
and the point's map in the target. The loss asks each pair of maps to agree: the maps stay alike
when a translation keeps the structure, whatever the colours and textures. With ``--heads`` the
features first pass through a run's learned 1x1 head of that layer. Prints, per point, the cosine
similarity of the two maps.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from models.sesim import LAYER_NAMES, VGG16Features, VGGWeightsError, self_similarity
from scripts.error_map import load, load_heads, save_figure
from util.errors import UserError, run_cli

DEFAULT_POINTS = ("0.3,0.35", "0.5,0.6", "0.75,0.3")


def parse_points(values: list[str]) -> list[tuple[float, float]]:
    """['0.3,0.4', ...] -> [(0.3, 0.4), ...], each coordinate a fraction in [0, 1)."""
    points = []
    for value in values:
        try:
            x, y = (float(v) for v in value.split(","))
        except ValueError:
            raise UserError(f"--points {value}: give x,y fractions of the width and height, e.g. 0.5,0.25") from None
        if not (0 <= x < 1 and 0 <= y < 1):
            raise UserError(f"--points {value}: both fractions must be in [0, 1)")
        points.append((x, y))
    return points


def point_maps(feat: torch.Tensor, points: list[tuple[float, float]]) -> np.ndarray:
    """feat: (1, C, h, w) -> (N, h, w) cosine self-similarity of each point to every location."""
    _, _, h, w = feat.shape
    ids = torch.tensor([min(int(y * h), h - 1) * w + min(int(x * w), w - 1) for x, y in points])
    sims = self_similarity(feat, ids, patch_size=max(h, w), use_norm=True)  # (1, N, h*w)
    return sims[0].view(len(points), h, w).cpu().numpy()


def map_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two (h, w) maps, flattened."""
    return float(F.cosine_similarity(torch.from_numpy(a).flatten(), torch.from_numpy(b).flatten(), dim=0))


def draw(
    images: list[np.ndarray], maps: list[np.ndarray], points: list[tuple[float, float]], titles: list[str], path: str
) -> None:
    """One row per point: source + marker, its map, target + marker, its map (maps share [-1, 1])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12.0, 3.1 * len(points)), dpi=90)
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(points), 4, squeeze=False)
    for r, (x, y) in enumerate(points):
        agreement = map_agreement(maps[0][r], maps[1][r])
        for side in range(2):
            image, axes = images[side], grid[r, 2 * side]
            axes.imshow(image)
            axes.plot([x * image.shape[1]], [y * image.shape[0]], marker="+", color="red", markersize=16, mew=3)
            axes.set_title(f"{titles[side]}: point {r + 1}", fontsize=9)
            shown = grid[r, 2 * side + 1].imshow(maps[side][r], cmap="viridis", vmin=-1.0, vmax=1.0)
            grid[r, 2 * side + 1].set_title(
                f"self-similarity in the {titles[side]}" + (f"\n(maps agree: cos {agreement:.2f})" if side else ""),
                fontsize=9,
            )
            figure.colorbar(shown, ax=grid[r, 2 * side + 1], fraction=0.046, pad=0.04)
        for axes in grid[r]:
            axes.set_xticks([])
            axes.set_yticks([])
    figure.tight_layout()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="the input image (e.g. a photo)")
    parser.add_argument("--target", required=True, help="its translation (or any image of the same scene)")
    parser.add_argument("--points", nargs="+", default=list(DEFAULT_POINTS), help="query points x,y (fractions)")
    parser.add_argument("--layer", default="relu3_1", choices=LAYER_NAMES, help="VGG16 layer of the maps")
    parser.add_argument("--heads", default=None, help="an LSeSim run's net_F: maps through its learned head")
    parser.add_argument("--attn_layers", default="4,7,9", help="the run's layers (to pick the head of --layer)")
    parser.add_argument("--size", type=int, default=256, help="resize both images to size x size (0: keep)")
    parser.add_argument("--vgg_weights", default="imagenet", help="imagenet, a path, or random (smoke tests)")
    parser.add_argument("--output", default="structure_map.png", help="PNG to write")
    args = parser.parse_args()
    points = parse_points(args.points)
    layer = LAYER_NAMES.index(args.layer)
    attn_layers = [int(v) for v in args.attn_layers.split(",") if v.strip()]
    if args.heads and layer not in attn_layers:
        raise UserError(f"--layer {args.layer}: --heads has heads for layers {args.attn_layers} only")
    try:
        vgg = VGG16Features(layers=sorted(set(attn_layers) | {layer}), weights=args.vgg_weights)
    except (ValueError, VGGWeightsError) as exc:
        raise UserError(str(exc)) from None
    source, target = load(args.source, args.size), load(args.target, args.size)
    if source.shape != target.shape:
        raise UserError(
            f"--source and --target sizes differ ({tuple(source.shape[-2:])} vs "
            f"{tuple(target.shape[-2:])}); pass --size"
        )
    with torch.no_grad():
        feat = vgg(torch.cat([source, target]))[vgg.layers.index(layer)]
        if args.heads:
            feat = load_heads(args.heads, vgg, attn_layers)[attn_layers.index(layer)](feat)
        maps = [point_maps(feat[i : i + 1], points) for i in range(2)]
    images = [((x[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1) for x in (source, target)]
    draw(images, maps, points, ["source", "target"], args.output)
    for r, point in enumerate(points):
        print(
            f"point {r + 1} at {point}: cosine similarity of the source and target maps "
            f"{map_agreement(maps[0][r], maps[1][r]):.3f}"
        )
    print(f"figure: {args.output}")


if __name__ == "__main__":
    run_cli(main)
