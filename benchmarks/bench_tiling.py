"""Time and peak memory of translating one large photo on the CPU, whole against tiled (inference/tiling.py).

    python benchmarks/bench_tiling.py --height 3072 --width 4096 --tile 1024

The sc generator at full size (resnet_9blocks, ngf 64, anti-aliased; random weights: the cost does not depend
on them). Each mode runs in its own process, so its peak resident memory (ru_maxrss) is its own; the largest
difference between the two outputs is printed too (in [0, 1] output units).
"""

import argparse
import os
import resource
import subprocess
import sys
import time

import torch


def run_one(mode: str, height: int, width: int, tile: int, out: str) -> None:
    from models.networks import define_G
    from inference.tiling import translate_tiled

    torch.manual_seed(0)
    net = define_G("resnet_9blocks", 3, 3, 64, "instance", False, "xavier", 0.02, False, False).eval()
    x = (
        torch.nn.functional.interpolate(
            torch.rand(1, 3, height // 64, width // 64), size=(height, width), mode="bilinear"
        )
        * 2
        - 1
    )
    start = time.perf_counter()
    with torch.no_grad():
        y = net(x) if mode == "whole" else translate_tiled(net, x, tile=tile)
    seconds = time.perf_counter() - start
    torch.save(y, out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"{mode}: {seconds:.1f} s, peak memory {peak:.2f} GiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=3072)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["whole", "tiled"],
        choices=["whole", "tiled"],
        help="which passes to run (whole alone needs about 2 GiB per megapixel)",
    )
    parser.add_argument("--mode", choices=["whole", "tiled"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_one(args.mode, args.height, args.width, args.tile, args.out)
        return
    print(f"{args.width}x{args.height}, tile {args.tile}, {torch.get_num_threads()} threads")
    outputs = {}
    for mode in args.modes:
        outputs[mode] = f"/tmp/bench_tiling_{os.getpid()}_{mode}.pt"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--out",
                outputs[mode],
                "--height",
                str(args.height),
                "--width",
                str(args.width),
                "--tile",
                str(args.tile),
            ],
            check=True,
        )
    if len(outputs) == 2:
        whole, tiled = (torch.load(outputs[m]) for m in ("whole", "tiled"))
        print(f"largest |tiled - whole| in [0, 1] units: {float((tiled - whole).abs().max()) / 2:.2e}")
    for path in outputs.values():
        os.remove(path)


if __name__ == "__main__":
    main()
