"""Video throughput against the image path at the same frame size (inference/video.py).

    python benchmarks/bench_video.py [--size 256 256] [--frames 48] [--batch 4] [--threads 2] [--ngf 64]

Builds the default sc generator (resnet_9blocks, random weights: they do not change the time) as a lone
generator file, makes a clip of ``--frames`` frames panning over datasets/single_demo/trainA/home.jpg (H.264
with an AAC tone), and times, in one process:

- image path: the decoded frames through ``Translator.translate_tensor`` in batches of ``--batch``, compute
  only (what translating the frames as images costs at best);
- video, per-frame statistics: ``translate_video`` end to end, decoding, translating, encoding and copying
  the sound, overlapped in threads;
- video, clip statistics: the same plus the first pass that finds the shots (a colour histogram per frame) and
  gathers each shot's statistics over its sample frames;
- video, auto statistics (the default): the same as clip, plus the first layer once more over the sample (the
  spread of the frames' statistics, which decides between the shot's shared statistics and each frame's own).

Prints frames/s of each and the video's share of the image path's rate.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from fractions import Fraction

import numpy as np
import torch

from inference import Translator
from inference.video import model_input, read_frames, translate_video
from models.networks import define_G

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_clip(path: str, frames: int, size: tuple[int, int]) -> None:
    """A pan over the repository's photo, scaled to cover ``size`` (H, W), with a 440 Hz tone."""
    import av
    from PIL import Image

    h, w = size
    photo = Image.open(os.path.join(REPO_ROOT, "datasets", "single_demo", "trainA", "home.jpg")).convert("RGB")
    scale = max((w + 2 * frames) / photo.width, h / photo.height)
    photo = np.asarray(photo.resize((int(photo.width * scale) + 1, int(photo.height * scale) + 1)))
    with av.open(path, "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[:h, 2 * t : 2 * t + w]), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 25)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, int(48000 * frames / 25), 1024):
            samples = (0.3 * np.sin(2 * np.pi * 440 * (start + np.arange(1024)) / 48000)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngf", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        generator = os.path.join(folder, "latest_net_G.pth")
        torch.save(
            define_G("resnet_9blocks", 3, 3, args.ngf, "instance", False, "xavier", 0.02, False, False).state_dict(),
            generator,
        )
        translator = Translator.load(generator)
        clip = os.path.join(folder, "clip.mp4")
        make_clip(clip, args.frames, tuple(args.size))
        frames = [f.image for f in read_frames(clip)]
        with torch.no_grad():
            translator.translate_tensor(model_input(translator, frames[: args.batch]))  # warm-up
            start = time.perf_counter()
            for i in range(0, len(frames), args.batch):
                translator.translate_tensor(model_input(translator, frames[i : i + args.batch]))
            image_seconds = time.perf_counter() - start
        rows = [("image path (compute only)", image_seconds)]
        for statistics in ("frame", "clip", "auto"):
            start = time.perf_counter()
            translate_video(
                translator,
                clip,
                os.path.join(folder, f"out_{statistics}.mp4"),
                statistics=statistics,
                batch=args.batch,
                progress=False,
            )
            rows.append((f"video, {statistics} statistics (decode + translate + encode)", time.perf_counter() - start))
    print(
        f"{args.frames} frames of {args.size[1]}x{args.size[0]}, sc resnet_9blocks ngf {args.ngf}, batch "
        f"{args.batch}, {args.threads} threads\n"
    )
    print("| path | s | frames/s | share of the image path's rate |\n|---|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {args.frames / seconds:.2f} | {100 * image_seconds / seconds:.0f}% |")


if __name__ == "__main__":
    main()
