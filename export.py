"""Export a trained generator to ONNX, with the image scaling and size padding inside the graph.

    python export.py --name h2z --format onnx                       # -> checkpoints/h2z/h2z_latest_AtoB.onnx
    python export.py --name h2z --format onnx --check               # and compare onnxruntime with PyTorch
    python export.py --name s2w_mmsc --format onnx --direction BtoA --output s2w_BtoA.onnx

The model is loaded with the translation API (``Translator.load``: a run name, run folder, generator file,
Hub folder or Hub id). The graph (inference/onnx_export.py, opset 17) takes ``image``: float32 (N, C, H, W) RGB
(or grey for a one-channel model) in [0, 1], any H and W of at least 8 pixels, and gives ``translated`` of
the same size in [0, 1]: the (x - 0.5) / 0.5 scaling, the padding to the generator's size multiple and the
crop back all happen inside it. For ``--model mmsc`` the graph has a second input ``style``, the style code
(N, style_dim, 1, 1) (draw it from N(0, I)), and is the source domain's content encoder followed by the
target domain's decoder.

``--check`` runs the file in onnxruntime (``pip install onnxruntime``) against the PyTorch model through the
API on two sizes (one square, one non-square and not a multiple of 8) and prints the largest absolute
difference of the [0, 1] output.
"""

from __future__ import annotations

import argparse
import os

import torch

from inference import Translator
from util.errors import UserError, run_cli
from inference.onnx_export import OPSET, ORT_MISSING, CheckResult, ExportGraph, check_graph, export_graph

CHECK_SIZES = ((256, 256), (183, 301))  # (H, W): the second is non-square and needs padding
CHECK_BATCH = 2
CHECK_BOUND = 1e-4  # the largest |onnxruntime - PyTorch| --check accepts (float32 on the CPU: about 1e-6)


def parse_args(argv: "list[str] | None" = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--name",
        required=True,
        help="the model: a run under --checkpoints_dir, a run folder, a generator file, a Hub "
        "folder or a Hub repository id",
    )
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="the export format")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where runs are")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest or an epoch number")
    parser.add_argument(
        "--direction",
        default=None,
        choices=["AtoB", "BtoA"],
        help="the translation's direction (default: the trained one; the other one for cycle_gan and mmsc)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="the .onnx file (default: <run folder>/<name>_<epoch>_<direction>.onnx, or "
        "./<name>_<epoch>_<direction>.onnx for other sources)",
    )
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset version (at least 11)")
    parser.add_argument(
        "--check", action="store_true", help="compare onnxruntime with PyTorch on two sizes (needs onnxruntime)"
    )
    return parser.parse_args(argv)


def build_graph(translator: Translator) -> ExportGraph:
    """The exported module: the model's inference graph (what it declares; mmsc's takes a style code too)
    between the [0, 1] scaling in and out."""
    return ExportGraph(translator.generator, translator.opt.input_nc, name=translator.generator_name)


def reference(translator: Translator) -> "callable":
    """PyTorch's translation of the graph's inputs through the API (what test.py and translate.py give).

    mmsc: the graph's inputs are one image repeated with the style codes the model draws for
    ``n_styles=N, seed=0`` (the graph's ``style_codes``), so the API's N translations of that image are the
    answer.
    """
    if translator.multi_output:

        def styled(image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            return translator.translate(image[:1], n_styles=style.shape[0], seed=0)[0]

        return styled
    return lambda image: translator.translate(image)


def default_output(args: argparse.Namespace, translator: Translator) -> str:
    """<run folder>/<name>_<epoch>_<direction>.onnx for a run, else that name in the current folder."""
    run = os.path.join(args.checkpoints_dir, args.name)
    folder = run if os.path.isdir(run) else (args.name if os.path.isdir(args.name) else ".")
    stem = os.path.basename(os.path.normpath(args.name)).replace("/", "_")
    stem = os.path.splitext(stem)[0]
    return os.path.join(folder, f"{stem}_{translator.epoch}_{translator.options.get('direction', 'AtoB')}.onnx")


def print_check(results: list[CheckResult]) -> None:
    for result in results:
        height, width = result.size
        line = f"check {height}x{width} (batch {CHECK_BATCH}): max |onnxruntime - PyTorch| = {result.max_abs_diff:.2e}"
        if result.noise_std_onnx is not None:
            line += (
                f" without the noise; the noise's effect has std {result.noise_std_onnx:.4f} in onnxruntime, "
                f"{result.noise_std_torch:.4f} in PyTorch"
            )
        print(line)


def main() -> None:
    args = parse_args()
    if args.opset < 11:
        raise UserError(f"--opset {args.opset}: the graph's dynamic padding needs opset 11 or later")
    if args.check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UserError(ORT_MISSING) from None
    translator = Translator.load(
        args.name, direction=args.direction, epoch=args.epoch, checkpoints_dir=args.checkpoints_dir
    )
    graph = build_graph(translator)
    output = args.output or default_output(args, translator)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    export_graph(graph, output, opset=args.opset)
    inputs = "image (N, C, H, W) in [0, 1]"
    inputs += f", style (N, {graph.style_dim}, 1, 1)" if translator.multi_output else ""
    print(f"exported {translator.describe()}\n  -> {output} (opset {args.opset}; {inputs} -> translated in [0, 1])")
    if args.check:
        results = check_graph(graph, output, reference(translator), sizes=CHECK_SIZES, batch=CHECK_BATCH)
        print_check(results)
        worst = max(r.max_abs_diff for r in results)
        if worst > CHECK_BOUND:
            raise UserError(f"--check: onnxruntime differs from PyTorch by {worst:.2e}, more than {CHECK_BOUND:g}")


if __name__ == "__main__":
    run_cli(main)
