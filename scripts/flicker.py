"""Flicker, measured: the warping error of translated clips under each normalisation-statistics setting.

    python scripts/flicker.py --name demo_photo2painting --photo datasets/single_demo/trainA/home.jpg \
        --out docs/video [--clip walking.mp4 --clip_max_frames 100 --clip_side 320 --photo2 painting.jpg]

The warping error of a clip (Lai et al., ECCV 2018) is the mean absolute difference, in 0-255 units, between
each frame and the previous frame carried along the motion onto it, over the pixels visible in both: for every
pixel p of frame t, its position in frame t-1 is p + flow(p), and the previous frame is sampled there
(bilinearly). The same number for the input clip is its floor (what resampling alone costs). Motion:

- camera pans and zooms over ``--photo`` (a real photo), made here, with their exact flow: a pan by (dx, dy)
  pixels a frame has the flow (dx, dy) everywhere, visible where p + flow stays inside the frame; a zoom by a
  factor z a frame about the centre c has the flow (p - c)(1 / z - 1);
- a real clip (``--clip``): the flow estimated on the input frames by OpenCV's dense Farneback method, from
  frame t back to frame t-1, with pixels whose forward-backward flows disagree (occlusions) left out;
- a clip with cuts (``--photo2`` and a ``--clip``): five shots of ``--frames`` frames at ``--size``, one after
  the other: the real clip's first frames, a pan over ``--photo``, a zoom into ``--photo2``, later frames of the
  real clip, a diagonal pan over ``--photo2``; the pairs across the cuts are left out.

For each motion every statistics setting of inference/video.py translates the frames ('frame': each its own,
'auto', 'clip', 'running'; for the pans and zooms also 'auto' with ``phase_average``, the mean over the
generator's 16 grid phases); writes flicker.csv (one row per motion and setting, with the input's floor),
flicker.md (the table: whole frame / interior, ``--margin`` pixels from the edges left out; for the clip with
cuts, also the clip's statistics without cut detection and how far each setting's frames are from each shot
translated alone), flicker_shifts.md (the generator's own response to shifts of 1 to 8 pixels with the
statistics fixed),
flicker_strip.jpg (the pans and zooms; rows: input and each setting; columns: frames) and flicker_plot.png
(the error between consecutive frames over time, per setting).
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inference import Translator
from inference.video import (
    CUT_THRESHOLD,
    clip_statistics,
    default_statistics,
    read_frames,
    shot_statistics,
    translate_frames,
)
from util.errors import UserError, run_cli

Motion = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]  # frames, flows (t -> t-1), masks


def warp(previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``previous`` (H, W, C) float sampled at p + flow(p) for every pixel p (bilinear, border clamped)."""
    h, w = flow.shape[:2]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    grid = np.stack([(xs + flow[..., 0]) / max(w - 1, 1) * 2 - 1, (ys + flow[..., 1]) / max(h - 1, 1) * 2 - 1], -1)
    image = torch.from_numpy(np.ascontiguousarray(previous.transpose(2, 0, 1)))[None].float()
    out = F.grid_sample(
        image, torch.from_numpy(grid)[None].float(), mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[0].numpy().transpose(1, 2, 0)


def inside(flow: np.ndarray) -> np.ndarray:
    """Pixels whose position in the previous frame, p + flow(p), lies inside it."""
    h, w = flow.shape[:2]
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def warping_errors(frames: list[np.ndarray], flows: list[np.ndarray], masks: list[np.ndarray]) -> list[float]:
    """Per consecutive pair (t-1, t): mean |frame_t - warp(frame_(t-1), flow_t)| over mask_t, 0-255 units (pairs
    with an empty mask, across a cut, left out)."""
    errors = []
    for t in range(1, len(frames)):
        current, previous = frames[t].astype(np.float32), frames[t - 1].astype(np.float32)
        if not masks[t - 1].any():  # a cut: nothing of the previous frame is visible
            continue
        diff = np.abs(current - warp(previous, flows[t - 1])).mean(axis=-1)
        errors.append(float(diff[masks[t - 1]].mean()))
    return errors


def pan(photo: np.ndarray, count: int, size: tuple[int, int], step: tuple[float, float], scale: int = 2) -> Motion:
    """``count`` frames of ``size`` (H, W), each moved by ``step`` (dx, dy) frame pixels from the last, with the
    exact flow. Every frame is a crop of the photo at whole photo pixels shrunk ``scale`` times by area
    averaging, so steps in multiples of 1 / ``scale`` move every frame's pixel grid alike (one filter for all:
    a moving camera's, not a resampling's that changes with the sub-pixel phase)."""
    h, w = size
    dx, dy = step
    image = Image.fromarray(photo)
    frames = []
    for t in range(count):
        x, y = int(round((8 + t * dx) * scale)), int(round((8 + t * dy) * scale))
        crop = image.crop((x, y, x + w * scale, y + h * scale))
        frames.append(np.asarray(crop.resize((w, h), Image.Resampling.BOX)))
    flow = np.broadcast_to(np.array([dx, dy], np.float32), (h, w, 2)).copy()
    return frames, [flow] * (count - 1), [inside(flow)] * (count - 1)


def zoom(photo: np.ndarray, count: int, size: tuple[int, int], factor: float) -> Motion:
    """``count`` frames zooming in by ``factor`` a frame about the photo's centre, with the exact flow."""
    h, w = size
    ph, pw = photo.shape[:2]
    frames = []
    for t in range(count):
        scale = min(ph / h, pw / w) * 0.9 / factor**t  # photo pixels per frame pixel
        image = Image.fromarray(photo).resize(
            (w, h),
            Image.Resampling.BICUBIC,
            box=(pw / 2 - w * scale / 2, ph / 2 - h * scale / 2, pw / 2 + w * scale / 2, ph / 2 + h * scale / 2),
        )
        frames.append(np.asarray(image))
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2  # resize's pixel centres: frame pixel p maps to the box at (p + 0.5)
    flow = np.stack([(xs - cx) * (1 / factor - 1), (ys - cy) * (1 / factor - 1)], -1).astype(np.float32)
    return frames, [flow] * (count - 1), [inside(flow)] * (count - 1)


def estimated_flows(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Farneback flows from each frame back to the previous one, and masks of the pixels whose backward and
    forward flows agree (|b(p) + f(p + b(p))|^2 < 0.01 (|b|^2 + |f|^2) + 0.5, Sundaram et al.) and stay inside."""
    try:
        import cv2
    except ImportError:
        raise UserError("--clip needs OpenCV's optical flow: pip install opencv-python-headless") from None
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flows, masks = [], []
    for t in range(1, len(frames)):
        args = (None, 0.5, 3, 15, 3, 5, 1.2, 0)
        back = cv2.calcOpticalFlowFarneback(grey[t], grey[t - 1], *args)
        forth = cv2.calcOpticalFlowFarneback(grey[t - 1], grey[t], *args)
        forth_at = warp(forth, back)
        mismatch = np.square(back + forth_at).sum(-1)
        agree = mismatch < 0.01 * (np.square(back).sum(-1) + np.square(forth_at).sum(-1)) + 0.5
        flows.append(back)
        masks.append(agree & inside(back))
    return flows, masks


ONE_SET = "clip, no cuts"  # the clip statistics of the whole clip, shots or not (no cut detection)
PHASED = "auto, phase-averaged"  # --phase_average: the mean over the generator's grid phases (16 passes)


def translated(translator: Translator, frames: list[np.ndarray], statistics: str) -> list[np.ndarray]:
    """The frames translated with ``statistics`` as translate.py would ('auto', 'clip': each shot's, from 16
    frames spread over it; ONE_SET: the clip's, as if it had no cuts)."""
    options = {"phase_average": statistics == PHASED}
    if statistics in ("auto", "clip", ONE_SET, PHASED):
        one_set = statistics == ONE_SET
        statistics = "clip" if one_set else "auto" if statistics == PHASED else statistics
        shots = shot_statistics(translator, frames, statistics, cut_threshold=1.0 if one_set else CUT_THRESHOLD)
        print(f"  {statistics}: {len(shots)} shots, spreads " + " ".join(f"{s.spread:.3f}" for s in shots))
        statistics = shots
    return list(translate_frames(translator, frames, statistics=statistics, **options))


def interior(masks: list[np.ndarray], margin: int) -> list[np.ndarray]:
    """The masks without the pixels within ``margin`` of a frame's edge (where the generator's padding and the
    content entering its receptive field show)."""
    inner = []
    for mask in masks:
        keep = np.zeros_like(mask)
        keep[margin:-margin, margin:-margin] = True
        inner.append(mask & keep)
    return inner


def measure(
    translator: Translator, motions: dict[str, Motion], settings: list[str], margin: int
) -> tuple[list[dict], dict]:
    """Rows of the table, and every motion's per-step errors and frames per setting (for the figures)."""
    rows, series = [], {}
    for label, (frames, flows, masks) in motions.items():
        floor = warping_errors(frames, flows, masks)
        inner = interior(masks, margin)
        series[label] = {"input": (frames, floor)}
        outputs = {}
        extra = [] if "clip" not in settings else [ONE_SET] if label.startswith("cuts") else []
        extra += [PHASED] if "clip" in settings and not label.startswith(("clip ", "cuts")) else []
        for setting in settings + extra:
            outputs[setting] = translated(translator, frames, setting)
            errors = warping_errors(outputs[setting], flows, masks)
            if setting != ONE_SET:
                series[label][setting] = (outputs[setting], errors)
            rows.append(
                {
                    "motion": label,
                    "statistics": setting,
                    "frames": len(frames),
                    "warping_error": float(np.mean(errors)),
                    "max_step": float(np.max(errors)),
                    "interior": float(np.mean(warping_errors(outputs[setting], flows, inner))),
                    "input_floor": float(np.mean(floor)),
                }
            )
            print(
                f"{label:32s} {setting:8s} warping error {np.mean(errors):7.3f}, interior "
                f"{rows[-1]['interior']:.3f} (input {np.mean(floor):.3f})",
                flush=True,
            )
        for row in rows[-len(outputs) :]:  # how far from each shot translated alone ('clip': each shot's own)
            by_shot = outputs.get("clip")
            row["from_shots"] = (
                float(
                    np.mean(
                        [np.abs(a.astype(np.float32) - b).mean() for a, b in zip(outputs[row["statistics"]], by_shot)]
                    )
                )
                if by_shot is not None
                else float("nan")
            )
    return rows, series


def write_table(rows: list[dict], path: str) -> str:
    settings = [s for s in dict.fromkeys(r["statistics"] for r in rows) if s != ONE_SET]
    lines = [
        "| motion | input (floor) | " + " | ".join(f"{s} statistics" for s in settings) + " |",
        "|---|---|" + "---|" * len(settings),
    ]
    for motion in dict.fromkeys(r["motion"] for r in rows):
        cells = {r["statistics"]: r for r in rows if r["motion"] == motion}
        floor = next(iter(cells.values()))["input_floor"]
        lines.append(
            f"| {motion} | {floor:.2f} | "
            + " | ".join(
                f"{cells[s]['warping_error']:.2f} / {cells[s]['interior']:.2f}" if s in cells else "–" for s in settings
            )
            + " |"
        )
    cuts = [r for r in rows if r["motion"].startswith("cuts") and r["statistics"] != "clip"]
    if cuts:
        lines += [
            "",
            "| clip with cuts | warping error | interior | mean distance from each shot translated alone (0-255) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['statistics']} | {r['warping_error']:.2f} | {r['interior']:.2f} | {r['from_shots']:.2f} |"
            for r in cuts
        ]
    table = "\n".join(lines) + "\n"
    with open(path, "w") as handle:
        handle.write(table)
    return table


def strip(series: dict, path: str, columns: int = 5, side: int = 128) -> None:
    """Rows: for every motion over the photo (not the real clips, whose pictures may not be ours to show), the
    input and each setting; columns: ``columns`` frames spread over the motion."""
    rows = []
    for label, by_setting in series.items():
        if label.startswith(("clip ", "cuts")):
            continue
        for frames, _ in by_setting.values():
            picks = np.linspace(0, len(frames) - 1, columns).round().astype(int)
            tiles = [
                Image.fromarray(frames[i]).resize((side, side * frames[i].shape[0] // frames[i].shape[1]))
                for i in picks
            ]
            rows.append(np.concatenate([np.asarray(t) for t in tiles], axis=1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    Image.fromarray(grid).save(path, quality=88)


def plot(series: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3), squeeze=False)
    for axis, (label, by_setting) in zip(axes[0], series.items()):
        for setting, (_, errors) in by_setting.items():
            axis.plot(range(1, len(errors) + 1), errors, label=setting, linestyle="--" if setting == "input" else "-")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("frame")
        axis.set_ylabel("warping error (0-255)")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def real_clip(path: str, count: int, side: int) -> Motion:
    """The first ``count`` frames of a clip, shrunk to ``side`` pixels wide, with estimated flows."""
    frames = []
    for frame in read_frames(path, max_frames=count):
        image = Image.fromarray(frame.image)
        height = int(round(image.height * side / image.width / 4)) * 4
        frames.append(np.asarray(image.resize((side, height), Image.Resampling.BICUBIC)))
    if len(frames) < 2:
        raise UserError(f"--clip {path}: needs at least 2 frames")
    flows, masks = estimated_flows(frames)
    return frames, flows, masks


def shift_errors(translator: Translator, photo: np.ndarray, size: tuple[int, int], margin: int, path: str) -> str:
    """With one fixed set of statistics (a pan's clip statistics), the interior warping error between the output
    of a frame and that of the frame shifted by 1 to 8 pixels: what is left when the statistics cannot change,
    the generator's own response to the shift (exact copies only at multiples of its stride)."""
    frames = pan(photo, 17, size, (1, 0))[0]
    stats = clip_statistics(translator, lambda: frames)
    outputs = list(translate_frames(translator, frames, statistics=stats))
    errors = {}
    for k in range(1, 9):
        flow = np.broadcast_to(np.array([k, 0], np.float32), size + (2,)).copy()
        mask = interior([inside(flow)], margin)[0]
        errors[k] = np.mean([warping_errors([outputs[t], outputs[t + k]], [flow], [mask])[0] for t in range(17 - k)])
    table = (
        "| shift (pixels) | " + " | ".join(str(k) for k in errors) + " |\n|---|" + "---|" * len(errors) + "\n"
        "| interior warping error, fixed statistics | " + " | ".join(f"{e:.2f}" for e in errors.values()) + " |\n"
    )
    with open(path, "w") as handle:
        handle.write(table)
    return table


def with_cuts(shots: list[Motion]) -> Motion:
    """The shots one after the other, the pair across each cut masked out."""
    frames, flows, masks = [], [], []
    for shot_frames, shot_flows, shot_masks in shots:
        if frames:
            flows.append(np.zeros(shot_frames[0].shape[:2] + (2,), np.float32))
            masks.append(np.zeros(shot_frames[0].shape[:2], bool))
        frames += shot_frames
        flows += shot_flows
        masks += shot_masks
    return frames, flows, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the model (anything Translator.load takes)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    parser.add_argument("--photo", required=True, help="a real photo the pans and zooms move over")
    parser.add_argument("--photo2", default=None, help="a second real photo, for the clip with cuts")
    parser.add_argument("--clip", action="append", default=[], help="a real clip (repeatable)")
    parser.add_argument("--clip_max_frames", type=int, default=60)
    parser.add_argument("--clip_side", type=int, default=256, help="real clips are shrunk to this width")
    parser.add_argument("--frames", type=int, default=16, help="frames of each pan and zoom")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 160), metavar=("H", "W"))
    parser.add_argument(
        "--margin", type=int, default=32, help="the interior column leaves out the pixels this close to a frame's edge"
    )
    parser.add_argument("--out", required=True, help="folder for flicker.csv, .md, _strip.jpg, _plot.png")
    args = parser.parse_args()
    translator = Translator.load(args.name, checkpoints_dir=args.checkpoints_dir)
    settings = ["frame", "auto", "clip", "running"] if default_statistics(translator) == "auto" else ["frame"]
    with Image.open(args.photo) as image:
        photo = np.asarray(image.convert("RGB"))
    size = tuple(args.size)
    needed = (2 * (size[0] + 16 + args.frames), 2 * (size[1] + 16 + 4 * args.frames))  # the pans, shrunk twice
    if photo.shape[0] < needed[0] or photo.shape[1] < needed[1]:
        raise UserError(
            f"--photo {args.photo}: {photo.shape[1]}x{photo.shape[0]} is too small for pans of "
            f"{args.frames} frames of {size[1]}x{size[0]} (needs {needed[1]}x{needed[0]})"
        )
    motions: dict[str, Motion] = {
        "pan 4 px/frame (stride-aligned)": pan(photo, args.frames, size, (4, 0)),
        "pan 3 px/frame": pan(photo, args.frames, size, (3, 0)),
        "pan 1.5 px/frame diagonal": pan(photo, args.frames, size, (1.5, 1.0)),
        "zoom 1% per frame": zoom(photo, args.frames, size, 1.01),
    }
    for clip in args.clip:
        motions[f"clip {os.path.basename(clip)}"] = real_clip(clip, args.clip_max_frames, args.clip_side)
    if args.clip and args.photo2:
        with Image.open(args.photo2) as image:
            photo2 = np.asarray(image.convert("RGB"))
        real = [f.image for f in read_frames(args.clip[0], max_frames=2 * args.frames + 24)]
        real = [np.asarray(Image.fromarray(f).resize(size[::-1], Image.Resampling.BICUBIC)) for f in real]
        motions[f"cuts: {os.path.basename(args.clip[0])}, pans and a zoom"] = with_cuts(
            [
                (real[: args.frames], *estimated_flows(real[: args.frames])),
                pan(photo, args.frames, size, (3, 0)),
                zoom(photo2, args.frames, size, 1.01),
                (real[-args.frames :], *estimated_flows(real[-args.frames :])),
                pan(photo2, args.frames, size, (1.5, 1.0)),
            ]
        )
    os.makedirs(args.out, exist_ok=True)
    with torch.no_grad():
        rows, series = measure(translator, motions, settings, args.margin)
    with open(os.path.join(args.out, "flicker.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(write_table(rows, os.path.join(args.out, "flicker.md")))
    if "clip" in settings:
        with torch.no_grad():
            print(shift_errors(translator, photo, size, args.margin, os.path.join(args.out, "flicker_shifts.md")))
    strip(series, os.path.join(args.out, "flicker_strip.jpg"))
    plot(series, os.path.join(args.out, "flicker_plot.png"))
    print(f"wrote flicker.csv, flicker.md, flicker_strip.jpg, flicker_plot.png in {args.out}")


if __name__ == "__main__":
    run_cli(main)
