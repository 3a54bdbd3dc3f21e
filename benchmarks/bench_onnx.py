"""Images per second of an exported generator in onnxruntime against PyTorch eager, on the CPU.

    python benchmarks/bench_onnx.py [--size 512] [--netG resnet_9blocks] [--ngf 64] [--threads 2] [--repeats 5]

Builds the ``sc`` model's default generator (``--netG resnet_9blocks --ngf 64``, instance norm,
anti-aliased sampling) with random weights (speed does not depend on them), wraps it as export.py
does (inference/onnx_export.py: [0, 1] images in and out, padding and scaling inside the graph), exports
it to a temporary ONNX file and times one ``--size``² image (batch 1) through the graph module in
PyTorch eager (``torch.no_grad``, ``--threads`` torch threads) and through onnxruntime's CPU provider
(``--threads`` intra-op threads). One warm-up each, then ``--repeats`` timed runs that take turns, so a
change of machine load hits both alike; images/s is 1 / the median wall-clock time. The process CPU time
of each run (all threads) is printed too: on a machine shared with other jobs it is the steadier measure of
the work. Before timing, the two outputs are compared (largest absolute difference printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch

from models.networks import GENERATORS, define_G
from inference.onnx_export import ExportGraph, export_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side (square), pixels")
    parser.add_argument("--netG", default="resnet_9blocks", choices=sorted(GENERATORS))
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads and onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
    args = parser.parse_args()

    import onnxruntime

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    generator = define_G(args.netG, 3, 3, args.ngf, "instance", False, "normal", 0.02, False, False)
    graph = ExportGraph(generator, 3).eval()
    image = torch.rand(1, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "generator.onnx")
        export_graph(graph, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    feed = {"image": image.numpy()}

    def run_torch() -> torch.Tensor:
        with torch.no_grad():
            return graph(image)

    def run_onnx() -> torch.Tensor:
        return torch.from_numpy(session.run(None, feed)[0])

    diff = (run_torch() - run_onnx()).abs().max().item()  # also the warm-up of each
    times: dict[str, list[float]] = {"PyTorch eager": [], "onnxruntime": []}
    cpu: dict[str, list[float]] = {"PyTorch eager": [], "onnxruntime": []}
    for _ in range(args.repeats):
        for label, run in (("PyTorch eager", run_torch), ("onnxruntime", run_onnx)):
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)

    machine = platform.processor() or platform.machine()
    print(
        f"{args.netG} ngf {args.ngf}, {args.size}x{args.size}, batch 1, {args.threads} threads, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {machine}"
    )
    print(f"max |onnxruntime - PyTorch| = {diff:.2e}")
    for label, seconds in times.items():
        median, median_cpu = statistics.median(seconds), statistics.median(cpu[label])
        print(
            f"{label:14s} {median * 1000:8.0f} ms/image  {1 / median:6.3f} images/s  "
            f"{median_cpu:6.2f} CPU s/image  (medians of {args.repeats})"
        )
    ratio = statistics.median(times["PyTorch eager"]) / statistics.median(times["onnxruntime"])
    ratio_cpu = statistics.median(cpu["PyTorch eager"]) / statistics.median(cpu["onnxruntime"])
    print(f"onnxruntime / PyTorch eager speed: x{ratio:.2f} (wall clock), x{ratio_cpu:.2f} (CPU time)")


if __name__ == "__main__":
    main()
