"""Translate images or folders of images with a trained model, each at its own size.

    python translate.py --name h2z photo.jpg out/             # out/photo.png
    python translate.py --name h2z photos/ out/               # every image under photos/, same sub-folders
    python translate.py --name h2z big.jpg out/ --max_side 1024   # larger images in seamless tiles
    python translate.py --name h2z clip.mp4 out.mp4               # a video: sound and frame times kept
    python translate.py --name h2z clip.mp4 frames/               # a video's frames as numbered PNGs

``--name`` is whatever the inference package's ``Translator.load`` (inference/translator.py) takes: a run under
``--checkpoints_dir``, a run folder, a generator file (a published ``latest_net_G.pth``), a Hub folder or a Hub
id ``owner/name``.
Outputs are PNG files named like their inputs (``<stem>.png``; mmsc: ``<stem>_1.png`` ... one per style),
under the output folder with the input folder's sub-folders. A file that cannot be read is named on one
line and skipped; the others are written, and the exit status is then 2. A video input (.mp4, .mov, .m4v,
.mkv, .webm, .avi) is translated frame by frame with normalisation statistics shared over the clip
(``--statistics``; inference/video.py, docs/video.md).
"""

from __future__ import annotations

import argparse
import collections
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image
from tqdm import tqdm

from data.image_folder import IMG_EXTENSIONS, is_image_file, load_image
from options.base_options import OptionParser
from inference import Translator
from inference.streaming import TooLarge, parse_bytes
from inference.video import CUT_THRESHOLD, STATISTICS, is_video_file, translate_video
from util.errors import UserError, run_cli
from util.image_io import atomic_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = OptionParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("input", help="an image file, or a folder of images (searched recursively)")
    parser.add_argument("output", help="the output folder (or, for one input file, an output .png file)")
    g = parser.add_argument_group("model")
    g.add_argument(
        "--name",
        required=True,
        help="run name under --checkpoints_dir, run folder, generator file, Hub folder or Hub id owner/name",
    )
    g.add_argument("--checkpoints_dir", default="./checkpoints", help="where run names are looked up")
    g.add_argument("--epoch", default="latest", help="which <epoch>_net_*.pth of a run")
    g.add_argument(
        "--model",
        default=None,
        help="the model a generator file belongs to, when it is not the one recorded or inferred "
        "(test: CycleGAN's pretrained generators)",
    )
    g.add_argument(
        "--direction",
        default=None,
        choices=["AtoB", "BtoA"],
        help="the other way than trained needs a two-way model (cycle_gan, mmsc)",
    )
    g = parser.add_argument_group("running")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when there is one)")
    g.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"], help="mixed precision")
    g.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnxruntime"],
        help="onnxruntime: whole images through the exported generator on the CPU (about 1.3x faster; "
        "exported once, about 3 s)",
    )
    g.add_argument(
        "--max_side",
        type=int,
        default=None,
        help="translate images with a longer side than this in tiles (inference/tiling.py)",
    )
    g.add_argument(
        "--tile", type=int, default=None, help="tile side (default --max_side); given alone, tile every image"
    )
    g.add_argument(
        "--max_memory",
        default=None,
        help="memory this process may use, e.g. 1.5G or 800M (default: 1.5G, less where the machine has less "
        "left): "
        "on the CPU, an image whose whole pass would not fit is translated exactly, stage by stage in tiles",
    )
    g.add_argument(
        "--scratch",
        default=None,
        help="folder for the maps that do not fit --max_memory (default: the system's temporary folder)",
    )
    g = parser.add_argument_group("video")
    g.add_argument(
        "--statistics",
        default=None,
        choices=list(STATISTICS),
        help="what the norms use across frames: auto (default where the generator allows: each shot's shared "
        "statistics, a still shot's frames their own), clip (each shot's), running (an average), frame (each its own)",
    )
    g.add_argument(
        "--clip_frames",
        type=int,
        default=16,
        help="frames spread over each shot that give its statistics (0: every frame)",
    )
    g.add_argument(
        "--clip_exact",
        action="store_true",
        help="gather the clip statistics layer by layer (exact; about 11 passes over those frames instead of one)",
    )
    g.add_argument("--momentum", type=float, default=0.9, help="--statistics running: weight of the past")
    g.add_argument(
        "--cut_threshold",
        type=float,
        default=CUT_THRESHOLD,
        help="a new shot where consecutive frames' colour histograms differ by more (0..1; 1: no cuts)",
    )
    g.add_argument(
        "--phase_average",
        action="store_true",
        help="average each frame over the generator's grid phases (16 passes for a stride of 4): the output then "
        "follows a pan by any whole number of pixels (docs/video.md)",
    )
    g.add_argument("--batch", type=int, default=4, help="frames, or images of one size, translated at once")
    g.add_argument("--max_frames", type=int, default=None, help="translate only the first N frames")
    g = parser.add_argument_group("mmsc")
    g.add_argument("--n_styles", type=int, default=None, help="translations per image (random style codes)")
    g.add_argument("--seed", type=int, default=None, help="seed of the style codes (and of any generator noise)")
    g.add_argument("--style_image", nargs="+", default=None, help="one translation per reference image")
    return parser.parse_args(argv)


def input_files(path: str) -> list[tuple[str, str]]:
    """(file, path relative to the input) for one file, or for every image file under a folder, sorted."""
    if os.path.isfile(path):
        return [(path, os.path.basename(path))]
    if not os.path.isdir(path):
        raise UserError(f"input: {path} does not exist")
    found = []
    for root, _, names in os.walk(path, followlinks=True):
        found += [
            (os.path.join(root, n), os.path.relpath(os.path.join(root, n), path)) for n in names if is_image_file(n)
        ]
    if not found:
        raise UserError(f"input: {path} holds no images ({', '.join(e.lstrip('.') for e in IMG_EXTENSIONS)})")
    return sorted(found)


def output_paths(relative: str, output: str, count: int, single_file: bool) -> list[str]:
    """Where the translations of the input at ``relative`` go: ``<output>/<relative stem>.png``, numbered
    ``_1`` ... ``_<count>`` for several styles; ``output`` itself when it names a .png for one input file."""
    if single_file and output.lower().endswith(".png") and count == 1:
        return [output]
    stem = os.path.join(output, os.path.splitext(relative)[0])
    return [stem + ".png"] if count == 1 else [f"{stem}_{k}.png" for k in range(1, count + 1)]


def main() -> None:
    args = parse_args()
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    translator = Translator.load(
        args.name,
        direction=args.direction,
        epoch=args.epoch,
        device=device,
        amp=args.amp,
        checkpoints_dir=args.checkpoints_dir,
        model=args.model,
        backend=args.backend,
    )
    print(f"model: {translator.describe()}")
    if os.path.isfile(args.input) and is_video_file(args.input):
        check_video_options(args)
        count = translate_video(
            translator,
            args.input,
            args.output,
            statistics=args.statistics,
            clip_frames=args.clip_frames,
            clip_exact=args.clip_exact,
            momentum=args.momentum,
            cut_threshold=args.cut_threshold,
            batch=args.batch,
            max_frames=args.max_frames,
            max_side=args.max_side,
            tile=args.tile,
            phase_average=args.phase_average,
        )
        print(f"translated {count} frames into {args.output}")
        return
    if args.phase_average:
        raise UserError(f"--phase_average: for video inputs (.mp4, .avi, ...); {args.input} is not one")
    max_memory = memory_option(args)
    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be at least 1")
    files = input_files(args.input)
    single_file = os.path.isfile(args.input)
    options = dict(
        n_styles=args.n_styles,
        seed=args.seed,
        style_image=args.style_image,
        max_side=args.max_side,
        tile=args.tile,
        max_memory=max_memory,
        scratch=args.scratch,
    )
    skipped = translate_files(translator, files, args.output, single_file, args.batch, options)
    written = len(files) - skipped
    print(f"translated {written} of {len(files)} images into {args.output}")
    if skipped:
        raise UserError(
            f"{skipped} of {len(files)} files could not be read or translated (named above); the others were written"
        )


def translate_files(
    translator: Translator, files: list[tuple[str, str]], output: str, single_file: bool, batch: int, options: dict
) -> int:
    """Translate ``files`` ((path, relative path) pairs) into ``output``: decoding the next images and encoding
    the last results on two threads while the model computes, consecutive images of one size in batches of up
    to ``batch``. Returns how many files could not be read (each named on one line)."""
    skipped = 0
    channels = translator.opt.input_nc
    with (
        ThreadPoolExecutor(1, thread_name_prefix="read") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="write") as writer,
        tqdm(total=len(files), desc="translate", unit="image") as bar,
    ):
        loads = collections.deque(reader.submit(load_image, path, channels) for path, _ in files[: batch + 1])
        saves: list = []
        group: list[tuple[str, Image.Image]] = []

        def flush() -> None:
            try:
                results = translator.translate_batch([image for _, image in group], **options)
            except TooLarge as exc:  # this image (or batch) only: the next ones may fit
                nonlocal skipped
                tqdm.write(f"skipped: {', '.join(relative for relative, _ in group)}: {exc}")
                skipped += len(group)
                bar.update(len(group))
                group.clear()
                return
            for (relative, _), outputs in zip(group, results):
                for result, destination in zip(outputs, output_paths(relative, output, len(outputs), single_file)):
                    saves.append(writer.submit(save_png, result, destination))
            bar.update(len(group))
            group.clear()
            while len(saves) > 2 * batch:  # bounded: the encoder may lag only so far
                saves.pop(0).result()

        for index, (_, relative) in enumerate(files):
            future = loads.popleft()
            if index + batch + 1 < len(files):
                loads.append(reader.submit(load_image, files[index + batch + 1][0], channels))
            try:
                image = future.result()
            except UserError as exc:
                tqdm.write(f"skipped: {exc}")
                skipped += 1
                bar.update(1)
                continue
            if group and (image.size != group[0][1].size or len(group) >= batch):
                flush()
            group.append((relative, image))
        if group:
            flush()
        for save in saves:
            save.result()
    return skipped


def memory_option(args: argparse.Namespace) -> int | None:
    """--max_memory in bytes (None: the default), and --scratch checked; one line for a bad value."""
    if args.scratch is not None and not os.path.isdir(args.scratch):
        raise UserError(f"--scratch {args.scratch}: no such folder")
    if args.max_memory is None:
        return None
    try:
        return parse_bytes(args.max_memory)
    except (ValueError, IndexError):
        raise UserError(f"--max_memory {args.max_memory}: give a size such as 1.5G, 800M or 4096") from None


def check_video_options(args: argparse.Namespace) -> None:
    """The video flags' ranges, one line each."""
    for option, least in (("clip_frames", 0), ("batch", 1), ("max_frames", 1)):
        value = getattr(args, option)
        if value is not None and value < least:
            raise UserError(f"--{option} {value}: must be at least {least}")
    if not 0.0 <= args.momentum < 1.0:
        raise UserError(f"--momentum {args.momentum}: must be in [0, 1)")
    if not 0.0 < args.cut_threshold <= 1.0:
        raise UserError(f"--cut_threshold {args.cut_threshold}: must be in (0, 1] (1: no cuts)")
    if args.clip_exact and args.clip_frames == 0:
        raise UserError("--clip_exact: gathering layer by layer needs a sample of each shot (--clip_frames above 0)")
    if args.n_styles is not None or args.style_image is not None:
        raise UserError("--n_styles/--style_image: a video is translated with one generator pass per frame")


def save_png(image: Image.Image, path: str) -> None:
    """Write ``image`` as PNG at ``path`` atomically (a crash never leaves half a file), creating folders."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


if __name__ == "__main__":
    run_cli(main)
