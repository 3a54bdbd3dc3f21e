"""Translation speed and memory against the machine's own limit: seconds, % of the fp32 matrix-multiply rate
measured in the same run, and peak resident memory of a child process, per image size and path.

    python benchmarks/bench_translate.py --sizes --folder 8      # the folder rate only
    python benchmarks/bench_translate.py --photo 4096x3072       # translate.py itself on one phone photo
    python benchmarks/bench_translate.py [--sizes 256x256 512x512 1024x768 2048x1536 4096x3072]
                                         [--threads 2] [--max_memory 1.5G] [--check 2048x1536] [--folder 8]

The generator is the ``sc`` model's default (``--netG resnet_9blocks --ngf 64``, instance norm, anti-aliased
sampling) with random weights (speed does not depend on them). Paths, each in its own child process so its
peak RSS (``ru_maxrss``, after a warm-up at 64x64 that loads torch and the weights) is its own:

- ``whole``: one pass, as Translator.translate runs an image that fits (``torch.no_grad``);
- ``streamed``: inference/streaming.py within ``--max_memory`` (the memory plan translate.py makes, streamed even
  where the image fits whole: maps that do not fit go to scratch files or are recomputed);
- ``onnxruntime``: the generator exported as export.py exports it, run by onnxruntime's CPU provider (when
  installed; whole images: translate.py ``--backend onnxruntime``);
- ``bf16``: the whole pass under CPU autocast to bfloat16, with its largest difference from the fp32 pass up to
  a megapixel;
- ``streamed_bf16``: the streamed path under that autocast, as translate.py ``--amp bf16`` runs every image on
  the CPU (channels last, where oneDNN's bf16 convolutions run on the AMX units), with the same difference.

GFLOP: every convolution's multiply-adds x 2 (torch.utils.flop_counter at 256x256, scaled by the pixel count:
the generator is fully convolutional). The rate is that GFLOP / seconds, also for the streamed path, whose
recomputed stages and tile margins therefore count against it. The GEMM rate: the best of 3 fp32 4096x4096
matrix products with the same threads, measured first. ``--check``: the size at which the streamed output
is compared with the whole pass (max |difference|, in [0, 1] units). Sizes whose whole pass would need more
than the machine's memory are skipped for ``whole`` and ``onnxruntime``.

``--photo WxH``: instead, translate.py itself on one photo of that size with its defaults: seconds (the whole
command) and the child's peak RSS.

``--folder N``: translate.py itself over folders of 1 and of N 512x512 PNG photos (decoding, translating,
encoding on its threads), against the best single-image time of the same translator in one process: the rate
of the N - 1 more photos (the difference of the two runs: no start-up) and of the whole folder (start-up, the
export included) as shares of the single-image rate, for each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import torch

GENERATOR = dict(kind="resnet_9blocks", ngf=64)


def gemm_rate(threads: int) -> float:
    """GFLOP/s of the best of 3 fp32 4096x4096 products."""
    torch.set_num_threads(threads)
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best / 1e9


def gflop_per_pixel() -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from models.networks import build_generator

    net = build_generator(**GENERATOR).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 256, 256))
    return counter.get_total_flops() / 1e9 / 256**2


def child(path: str, height: int, width: int, threads: int, max_memory: int, compare: bool) -> dict:
    """One timed translation in this process (run as ``--child``)."""
    from inference.streaming import memory_plan
    from inference.tiling import streamable, translate_tiled
    from models.networks import build_generator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_generator(**GENERATOR).eval()
    x = torch.rand(1, 3, height, width) * 2 - 1
    small = torch.rand(1, 3, 64, 64) * 2 - 1
    result: dict = {}
    if path == "onnxruntime":
        import onnxruntime

        from inference.onnx_export import ExportGraph, export_graph

        graph = ExportGraph(net, 3).eval()
        with tempfile.TemporaryDirectory() as folder:
            export_graph(graph, os.path.join(folder, "g.onnx"))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = onnxruntime.InferenceSession(
                os.path.join(folder, "g.onnx"), options, providers=["CPUExecutionProvider"]
            )
        session.run(None, {"image": ((small + 1) / 2).numpy()})
        feed = {"image": ((x + 1) / 2).numpy()}
        del x
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        session.run(None, feed)
    elif path in ("whole", "bf16"):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=path == "bf16")
        with torch.no_grad(), autocast:
            net(small)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            out = net(x)
        result["seconds"] = time.perf_counter() - start
        result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
        if path == "bf16" and height * width <= 1 << 20:  # the difference bf16 makes, where a second pass is cheap
            with torch.no_grad():
                result["difference"] = float((out.float() - net(x)).abs().max()) / 2
    else:
        # streamed_bf16: the stages under bf16 autocast, as Translator runs every image with amp='bf16'
        autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if path == "streamed_bf16" else None
        options = {"autocast": autocast} if autocast else {}
        program = streamable(net, net.inference, 3)
        translate_tiled(net, small, budget=64 << 20, **options)
        plan = memory_plan(program, 1, height, width, max_memory, stream=True)  # streamed even if it fits whole
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        out = translate_tiled(net, x, budget=plan.budget, map_bytes=plan.map_bytes, **options)
        seconds = time.perf_counter() - start
        result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
        result["plan"] = f"tiles {plan.budget >> 20} MiB, maps in memory up to {plan.map_bytes >> 20} MiB"
        if compare or (autocast and height * width <= 1 << 20):
            with torch.no_grad():
                result["difference"] = float((out - net(x)).abs().max()) / 2
        result.update(seconds=seconds)
    result.setdefault("seconds", time.perf_counter() - start)
    result.setdefault("peak_gib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30)
    result["before_gib"] = before * 1024 / 2**30
    return result


def run_child(path: str, height: int, width: int, args: argparse.Namespace, compare: bool) -> dict:
    command = [sys.executable, __file__, "--child", path, f"{width}x{height}", "--threads", str(args.threads)]
    command += ["--max_memory", args.max_memory] + (["--compare"] if compare else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def folder_rate(count: int, side: int, threads: int, backend: str) -> tuple[float, float, float]:
    """(seconds for translate.py over a folder of one PNG photo of ``side``², over ``count`` of them, and one
    image through the same translator in one process, the best of 2): the real command in child processes,
    reading and writing PNGs; the generator saved from random weights as a lone latest_net_G.pth. The
    difference of the two folders is the cost of ``count - 1`` more photos, without starting up."""
    import numpy as np
    from PIL import Image

    from models.networks import build_generator

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        weights = os.path.join(folder, "latest_net_G.pth")
        torch.save(build_generator(**GENERATOR).state_dict(), weights)
        rng = np.random.default_rng(0)
        for name, number in (("one", 1), ("many", count)):
            os.makedirs(os.path.join(folder, name))
            for i in range(number):  # smooth colour fields: PNGs that compress like photos, not like noise
                coarse = rng.integers(0, 256, (side // 32, side // 32, 3), dtype=np.uint8)
                image = Image.fromarray(coarse).resize((side, side), Image.BICUBIC)
                image.save(os.path.join(folder, name, f"{i:03d}.png"))
        single = (
            "import sys, time, torch; from inference import Translator; from PIL import Image\n"
            f"torch.set_num_threads({threads}); t = Translator.load(sys.argv[1], backend='{backend}')\n"
            "image = Image.open(sys.argv[2]).convert('RGB'); t.translate(image); best = 1e9\n"
            "for _ in range(2):\n"
            "    s = time.perf_counter(); t.translate(image); best = min(best, time.perf_counter() - s)\n"
            "print(best)"
        )
        first = os.path.join(folder, "one", "000.png")
        one = subprocess.run([sys.executable, "-c", single, weights, first], capture_output=True, text=True, env=env)
        seconds = []
        for name in ("one", "many"):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "translate.py", "--name", weights, "--device", "cpu", "--backend", backend]
                + [os.path.join(folder, name), os.path.join(folder, name + "_out")],
                check=True,
                capture_output=True,
                env=env,
                cwd=root,
            )
            seconds.append(time.perf_counter() - start)
        return seconds[0], seconds[1], float(one.stdout.strip().splitlines()[-1])


def photo_run(height: int, width: int, threads: int) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of translate.py itself on one smooth ``width`` x ``height`` PNG photo with its
    defaults (the memory plan, --max_memory 1.5G): the real command in a child process, its peak from
    RUSAGE_CHILDREN (this process starts no other child before it)."""
    import numpy as np
    from PIL import Image

    from models.networks import build_generator

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        weights = os.path.join(folder, "latest_net_G.pth")
        torch.save(build_generator(**GENERATOR).state_dict(), weights)
        coarse = np.random.default_rng(0).integers(0, 256, (height // 64, width // 64, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(os.path.join(folder, "photo.png"))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "translate.py", "--name", weights, "--device", "cpu"]
            + [os.path.join(folder, "photo.png"), os.path.join(folder, "out")],
            check=True,
            capture_output=True,
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["256x256", "512x512", "1024x768", "2048x1536", "4096x3072"])
    parser.add_argument("--paths", nargs="+", default=["whole", "streamed", "onnxruntime", "bf16", "streamed_bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_memory", default="1.5G", help="the streamed path's budget (translate.py's option)")
    parser.add_argument("--check", default="2048x1536", help="where the streamed output is compared with the whole")
    parser.add_argument("--folder", type=int, default=8, help="photos of 512x512 in the folder measured (0: none)")
    parser.add_argument(
        "--photo", default=None, help="only: translate.py itself on one photo of this size (e.g. 4096x3072)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("size", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from inference.streaming import parse_bytes

        height, width = size(args.size)
        print(json.dumps(child(args.child, height, width, args.threads, parse_bytes(args.max_memory), args.compare)))
        return

    if args.photo:
        height, width = size(args.photo)
        seconds, peak = photo_run(height, width, args.threads)  # first: RUSAGE_CHILDREN must be its own
        rate, gflop = gemm_rate(args.threads), gflop_per_pixel() * height * width
        print(
            f"translate.py on one {width}x{height} PNG photo (defaults): {seconds:.1f} s including loading and "
            f"writing, peak RSS {peak:.2f} GiB; {gflop:.0f} GFLOP, {gflop / seconds:.0f} GFLOP/s, "
            f"{100 * gflop / seconds / rate:.0f}% of the fp32 GEMM rate ({rate:.0f} GFLOP/s)"
        )
        return

    from inference.streaming import available_memory

    rate = gemm_rate(args.threads)
    per_pixel = gflop_per_pixel()
    memory = available_memory() or 0
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, torch "
        f"{torch.__version__}; fp32 GEMM (4096^3, best of 3): {rate:.0f} GFLOP/s; streamed within "
        f"--max_memory {args.max_memory}"
    )
    print("\n| size | GFLOP | path | s | GFLOP/s | % of GEMM | peak RSS (GiB) | note |")
    print("|---|---|---|---|---|---|---|---|")
    for text in args.sizes:
        height, width = size(text)
        gflop = per_pixel * height * width
        for path in args.paths:
            whole_bytes = 2.2 * 2**30 * height * width / 1e6  # measured: about 2 GiB per megapixel
            if not path.startswith("streamed") and whole_bytes > 0.8 * memory:
                note = f"needs ~{whole_bytes / 2**30:.0f} GiB"
                print(f"| {width}x{height} | {gflop:.0f} | {path} | – | – | – | – | {note} |")
                continue
            if path == "onnxruntime":
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    continue
            got = run_child(path, height, width, args, compare=path.startswith("streamed") and text == args.check)
            if "error" in got:
                print(f"| {width}x{height} | {gflop:.0f} | {path} | – | – | – | – | {got['error']} |")
                continue
            note = got.get("plan", "")
            if "difference" in got:
                note += f"{'; ' if note else ''}max difference to the fp32 whole pass {got['difference']:.1e}"
            speed = gflop / got["seconds"]
            print(
                f"| {width}x{height} | {gflop:.0f} | {path} | {got['seconds']:.1f} | {speed:.0f} | "
                f"{100 * speed / rate:.0f}% | {got['peak_gib']:.2f} | {note} |",
                flush=True,
            )
    print_folder(args)


def print_folder(args: argparse.Namespace) -> None:
    """The folder rate against the single-image rate, for each backend."""
    if not args.folder:
        return
    print(f"\nFolders of 1 and {args.folder} PNG photos of 512x512 through translate.py (read, translated, written):\n")
    print(
        f"| backend | 1 photo (s) | {args.folder} photos (s) | one image in-process (s) | rate of the "
        f"{args.folder - 1} more photos / single-image rate | whole folder / single-image rate |"
    )
    print("|---|---|---|---|---|---|")
    for backend in ("torch", "onnxruntime"):
        first, folder, one = folder_rate(args.folder, 512, args.threads, backend)
        marginal = 100 * (args.folder - 1) * one / (folder - first)
        print(
            f"| {backend} | {first:.1f} | {folder:.1f} | {one:.2f} | {marginal:.0f}% | "
            f"{100 * args.folder * one / folder:.0f}% |",
            flush=True,
        )


if __name__ == "__main__":
    main()
