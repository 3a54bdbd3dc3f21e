"""Speed, memory and FLOPs of the spatially-correlative loss and of one ``sc`` training step.

    python benchmarks/bench_loss.py [--sizes 256 512] [--device cpu|cuda] [--repeats 3] [--threads N]

Table 1 times forward + backward of ``models.sesim.SpatialCorrelativeLoss`` against
``benchmarks/loop_reference.py`` (the published code's Python loop over queries, stacked windows and
whole-row sort) on VGG16 feature maps of random images. Table 2 times ``SCModel.optimize_parameters``
built through the real options and counts its FLOPs. Weights are random: timings do not depend on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from typing import Callable, Optional, Sequence

import torch

from benchmarks.loop_reference import loop_loss
from models.sesim import SpatialCorrelativeLoss, VGG16Features

LOOP_FAST_SIZE = 256  # above this the loop reference runs once, without a warm-up
SPEEDUP_TARGET = 10.0  # the module must be this much faster than the loop at 256^2, patch 32
STEP_TARGETS = {  # variant: (GFLOP limit, seconds-per-step limit or None)
    "FSeSim": (610.0, None),
    "LSeSim": (800.0, 5.5),
}
PUBLISHED_STEP = {"FSeSim": "607 GFLOP, ~3.9 s/step", "LSeSim": "1301 GFLOP, ~9 s/step"}
PUBLISHED_SECONDS = {"FSeSim": 3.9, "LSeSim": 9.0}
MEMORY_NOTE = {
    "cpu": "peak MB = highest running sum of torch CPU-allocator allocations minus frees during one "
    "fwd+bwd (torch.profiler allocation events; tensors alive before the call not counted)",
    "cuda": "peak MB = torch.cuda.max_memory_allocated during one fwd+bwd minus memory_allocated before it",
}


# ---------------------------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    fns: Sequence[Callable[[], None]], repeats: Sequence[int], device: torch.device
) -> list[tuple[float, float]]:
    """(median wall s, median process-CPU s) of each of ``fns``, already warmed up.

    The calls take turns (a, b, a, b, ...), so a machine whose load changes during the run slows
    the compared functions alike. Process CPU time counts every thread of this process: with one
    thread it hardly depends on other programs competing for the cores.
    """
    samples: list[list[tuple[float, float]]] = [[] for _ in fns]
    for round_index in range(max(repeats)):
        for fn, wanted, times in zip(fns, repeats, samples):
            if round_index >= wanted:
                continue
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)) for times in samples]


def _cpu_allocation_peak(prof: torch.profiler.profile) -> int:
    """Highest running total of CPU allocations minus frees, in time order, from the raw event tree."""
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        if hasattr(fields, "alloc_size") and str(fields.device) == "cpu":
            events.append((node.start_time_ns, fields.alloc_size))
    running = peak = 0
    for _, size in sorted(events):
        running += size
        peak = max(peak, running)
    return peak


def peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak extra memory of one call of ``fn``; the method is described in ``MEMORY_NOTE``."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    return _cpu_allocation_peak(prof)


# ---------------------------------------------------------------------------------------------
# Table 1: the loss alone.
# ---------------------------------------------------------------------------------------------


def random_images(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, size, size) smooth-ish random images in [-1, 1] (upsampled noise, so maps have structure)."""
    coarse = torch.rand(count, 3, size // 8, size // 8, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def feature_sets(
    vgg: VGG16Features, size: int, device: torch.device, generator: torch.Generator
) -> dict[str, list[torch.Tensor]]:
    """VGG maps (one list per image) of real_A, fake_B, A_aug and rot180 of real_B and B_aug."""
    images = random_images(4, size, generator)
    real_a, fake_b, real_b, jitter = images.split(1)
    a_aug, b_aug = (real_a + 0.3 * jitter).clamp(-1, 1), (real_b - 0.3 * jitter).clamp(-1, 1)
    batch = torch.cat([real_a, fake_b, a_aug, torch.flip(real_b, dims=(2, 3)), torch.flip(b_aug, dims=(2, 3))])
    with torch.no_grad():
        maps = vgg(batch.to(device))
    names = ("A", "fake_B", "A_aug", "other", "other_aug")
    return {name: [m[i : i + 1].contiguous() for m in maps] for i, name in enumerate(names)}


def _gen_step_calls(
    criterion: SpatialCorrelativeLoss, feats: dict, ids: list, patch_size: int
) -> tuple[Callable, Callable]:
    """Generator step: src = real_A, tgt = fake_B (gradient wanted), heads frozen, mode cos."""
    src = feats["A"]
    tgt = [t.detach().requires_grad_(True) for t in feats["fake_B"]]
    heads = criterion.heads() or None

    def run(loss_fn: Callable[[], torch.Tensor]) -> None:
        criterion.requires_grad_(False)
        loss_fn().backward()
        for t in tgt:
            t.grad = None

    def module() -> None:
        run(lambda: criterion(src, tgt, None, ids))

    def loop() -> None:
        run(
            lambda: loop_loss(
                src,
                tgt,
                None,
                ids,
                mode="cos",
                patch_size=patch_size,
                use_norm=False,
                heads=heads,
                T=criterion.temperature,
            )
        )

    return module, loop


def _head_step_calls(
    criterion: SpatialCorrelativeLoss, feats: dict, ids: list, patch_size: int
) -> tuple[Callable, Callable]:
    """Head step with --augment: src [A, A], tgt [fake_B, A_aug], other rot180 [B, B_aug]; heads learn.

    The loop gets the doubled source, as the published code builds it; the module gets [A], which it
    tiles after its heads (what the sc model passes), so A's head and similarity run once.
    """
    single_src = feats["A"]
    src = [torch.cat([a, a]) for a in feats["A"]]
    tgt = [torch.cat([f, a]) for f, a in zip(feats["fake_B"], feats["A_aug"])]
    other = [torch.cat([o, a]) for o, a in zip(feats["other"], feats["other_aug"])]
    heads = criterion.heads()

    def run(loss_fn: Callable[[], torch.Tensor]) -> None:
        criterion.requires_grad_(True)
        loss_fn().backward()
        criterion.zero_grad(set_to_none=True)

    def module() -> None:
        run(lambda: criterion(single_src, tgt, other, ids))

    def loop() -> None:
        run(
            lambda: loop_loss(
                src,
                tgt,
                other,
                ids,
                mode="cos",
                patch_size=patch_size,
                use_norm=False,
                heads=heads,
                T=criterion.temperature,
            )
        )

    return module, loop


def loss_cases(vgg: VGG16Features, feats: dict, device: torch.device) -> list[tuple[str, Callable, Callable]]:
    """(label, module call, loop call) for FSeSim, LSeSim generator step and LSeSim head step."""
    fsesim = SpatialCorrelativeLoss(mode="cos", patch_size=64).to(device)
    lsesim = SpatialCorrelativeLoss(mode="cos", patch_size=32, learned=True, in_channels=vgg.out_channels).to(device)
    generator = torch.Generator().manual_seed(1)
    ids = [torch.randperm(f.shape[2] * f.shape[3], generator=generator)[:256] for f in feats["A"]]
    return [
        ("FSeSim p64 G-step (B=1)", *_gen_step_calls(fsesim, feats, ids, 64)),
        ("LSeSim p32 G-step (B=1)", *_gen_step_calls(lsesim, feats, ids, 32)),
        ("LSeSim p32 head step (B=2)", *_head_step_calls(lsesim, feats, ids, 32)),
    ]


def loss_table(sizes: Sequence[int], repeats: int, device: torch.device) -> list[dict]:
    """Rows of table 1, one per (size, case)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = VGG16Features(layers=(4, 7, 9), weights="random").to(device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for size in sizes:
        feats = feature_sets(vgg, size, device, generator)
        for label, module_fn, loop_fn in loss_cases(vgg, feats, device):
            # The memory runs come first and double as the warm-ups.
            module_peak, loop_peak = peak_bytes(module_fn, device), peak_bytes(loop_fn, device)
            loop_repeats = repeats if size <= LOOP_FAST_SIZE else 1
            module_t, loop_t = interleaved_medians([module_fn, loop_fn], [repeats, loop_repeats], device)
            rows.append(
                {
                    "size": size,
                    "case": label,
                    "module_s": module_t[0],
                    "loop_s": loop_t[0],
                    "module_cpu": module_t[1],
                    "loop_cpu": loop_t[1],
                    "module_mb": module_peak / 2**20,
                    "loop_mb": loop_peak / 2**20,
                }
            )
            print(f"  measured {size}^2 {label}", file=sys.stderr, flush=True)
        del feats
    return rows


def print_loss_table(rows: list[dict], device: torch.device, repeats: int) -> None:
    print(
        f"\nTable 1. Loss forward+backward on VGG16 relu3_1/relu4_1/relu4_3 maps, 256 queries per layer, "
        f"device {device}."
    )
    print(
        f"  wall / cpu = median wall-clock / process-CPU ms of {repeats} interleaved runs after a warm-up "
        f"(loop above {LOOP_FAST_SIZE}^2: 1 run); speedup = loop / module"
    )
    print(f"  {MEMORY_NOTE[device.type]}")
    header = (
        f"{'size':>5}  {'case':<27} {'module wall':>11} {'loop wall':>10} {'speedup':>8} "
        f"{'module cpu':>11} {'loop cpu':>10} {'speedup':>8} {'module MB':>10} {'loop MB':>10} {'mem ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['size']:>5}  {r['case']:<27} {r['module_s'] * 1e3:>11.1f} {r['loop_s'] * 1e3:>10.1f} "
            f"{r['loop_s'] / r['module_s']:>7.1f}x {r['module_cpu'] * 1e3:>11.1f} {r['loop_cpu'] * 1e3:>10.1f} "
            f"{r['loop_cpu'] / r['module_cpu']:>7.1f}x {r['module_mb']:>10.1f} {r['loop_mb']:>10.1f} "
            f"{r['loop_mb'] / max(r['module_mb'], 1e-9):>8.1f}x"
        )
    for r in rows:
        if r["size"] == 256 and "p32" in r["case"]:
            speedup = r["loop_s"] / r["module_s"]
            verdict = "PASS" if speedup >= SPEEDUP_TARGET else "MISS"
            print(
                f"Target: loss >= {SPEEDUP_TARGET:.0f}x faster than the loop at 256^2 patch 32 "
                f"[{r['case']}]: {speedup:.1f}x wall ({r['loop_cpu'] / r['module_cpu']:.1f}x cpu)  {verdict}"
            )


# ---------------------------------------------------------------------------------------------
# The loop reference must agree with the module before its timings mean anything.
# ---------------------------------------------------------------------------------------------


def _assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    scale = max(float(b.abs().max()), 1e-12)
    error = float((a - b).abs().max()) / scale
    assert error <= 1e-4, f"loop reference disagrees with SpatialCorrelativeLoss ({what}): rel. error {error:.2e}"


def _value_and_grads(
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], targets: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss value and its gradient with respect to fresh copies of ``targets``."""
    tgt = [t.clone().requires_grad_(True) for t in targets]
    loss = loss_fn(tgt)
    loss.backward()
    return loss.detach(), [t.grad for t in tgt]


def check_equivalence(device: torch.device) -> None:
    """Loss value and target gradient of module vs loop on small maps (local, global, non-square)."""
    generator = torch.Generator().manual_seed(2)
    shapes = [(12, 10), (8, 8)]  # p = 5 is local on both
    src, tgt, oth = ([torch.randn(2, 16, h, w, generator=generator).to(device) for h, w in shapes] for _ in range(3))
    ids = [torch.randperm(h * w, generator=generator)[:20] for h, w in shapes]
    for patch_size, use_norm, mode, learned in [
        (5, False, "cos", False),
        (5, True, "l1", True),
        (64, False, "cos", True),
        (5, False, "info", True),
    ]:
        criterion = SpatialCorrelativeLoss(
            mode=mode, patch_size=patch_size, use_norm=use_norm, learned=learned, in_channels=[16, 16]
        ).to(device)
        other = oth if mode == "info" else None
        options = dict(
            mode=mode,
            patch_size=patch_size,
            use_norm=use_norm,
            heads=criterion.heads() or None,
            T=criterion.temperature,
        )
        module = _value_and_grads(partial(criterion, src, other_feats=other, patch_ids=ids), tgt)
        loop = _value_and_grads(partial(loop_loss, src, other_feats=other, patch_ids=ids, **options), tgt)
        what = f"p={patch_size} use_norm={use_norm} mode={mode} learned={learned}"
        _assert_close(loop[0], module[0], what + " value")
        for loop_grad, module_grad in zip(loop[1], module[1]):
            _assert_close(loop_grad, module_grad, what + " gradient")


# ---------------------------------------------------------------------------------------------
# Table 2: one sc training step through the real options.
# ---------------------------------------------------------------------------------------------


def _tiny_dataroot(root: str) -> str:
    """<root>/trainA and trainB with two 16 px PNGs each (the options want a dataset folder)."""
    from PIL import Image

    for side in ("A", "B"):
        folder = os.path.join(root, "train" + side)
        os.makedirs(folder, exist_ok=True)
        for i in range(2):
            Image.new("RGB", (16, 16), (40 * i, 100, 200)).save(os.path.join(folder, f"{i}.png"))
    return root


def build_sc_model(extra: list[str], device: torch.device, root: str):
    """SCModel from TrainOptions with random VGG weights on ``device``."""
    from models import create_model
    from options.train_options import TrainOptions

    gpu = str(device.index or 0) if device.type == "cuda" else "-1"
    argv = [
        "--dataroot",
        _tiny_dataroot(os.path.join(root, "data")),
        "--gpu_ids",
        gpu,
        "--vgg_weights",
        "random",
        "--checkpoints_dir",
        os.path.join(root, "checkpoints"),
        "--name",
        "bench",
    ] + extra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_model(TrainOptions(argv).parse())


STEP_VARIANTS = {"FSeSim": [], "LSeSim": ["--learned_attn", "--augment", "--patch_size", "32"]}


def step_rows(repeats: int, device: torch.device, root: str) -> list[dict]:
    """GFLOP of one optimize_parameters and median seconds per step, for each of ``STEP_VARIANTS``."""
    from torch.utils.flop_counter import FlopCounterMode

    images = random_images(4, 256, torch.Generator().manual_seed(3))
    batch = {
        "A": images[0:1],
        "B": images[1:2],
        "A_aug": images[2:3],
        "B_aug": images[3:4],
        "A_paths": ["a.png"],
        "B_paths": ["b.png"],
    }
    models, gflops = [], []
    for extra in STEP_VARIANTS.values():
        model = build_sc_model(extra, device, root)
        model.set_input(batch)
        counter = FlopCounterMode(display=False)
        with counter:  # the counted step doubles as the warm-up
            model.optimize_parameters()
        models.append(model)
        gflops.append(counter.get_total_flops() / 1e9)
    times = interleaved_medians([m.optimize_parameters for m in models], [repeats] * len(models), device)
    return [
        {"variant": name, "flags": " ".join(extra) or "(defaults)", "gflop": gflop, "seconds": wall, "cpu_seconds": cpu}
        for (name, extra), gflop, (wall, cpu) in zip(STEP_VARIANTS.items(), gflops, times)
    ]


def print_step_table(rows: list[dict], device: torch.device, repeats: int) -> None:
    print(
        f"\nTable 2. sc model, optimize_parameters at 256^2, batch 1, device {device}; wall / cpu s = median "
        f"wall-clock / process-CPU seconds of {repeats} interleaved steps after a warm-up;\n"
        f"  GFLOP = torch.utils.flop_counter.FlopCounterMode over one step."
    )
    header = (
        f"{'variant':<8} {'GFLOP':>8} {'wall s':>8} {'cpu s':>8}  {'target (GFLOP, wall s)':<28} "
        f"{'published reference':<24} flags"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        flop_limit, time_limit = STEP_TARGETS[r["variant"]]
        verdicts = [f"<={flop_limit:.0f} GF " + ("PASS" if r["gflop"] <= flop_limit else "MISS")]
        if time_limit is not None:
            verdicts.append(f"<{time_limit} s " + ("PASS" if r["seconds"] < time_limit else "MISS"))
        print(
            f"{r['variant']:<8} {r['gflop']:>8.1f} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f}  "
            f"{', '.join(verdicts):<28} "
            f"{PUBLISHED_STEP[r['variant']]:<24} {r['flags']}"
        )
    by_name = {r["variant"]: r for r in rows}
    # The seconds targets come from other hardware; the LSeSim / FSeSim ratio carries over.
    target = STEP_TARGETS["LSeSim"][1] / PUBLISHED_SECONDS["FSeSim"]
    published = PUBLISHED_SECONDS["LSeSim"] / PUBLISHED_SECONDS["FSeSim"]
    ratio = by_name["LSeSim"]["seconds"] / by_name["FSeSim"]["seconds"]
    cpu_ratio = by_name["LSeSim"]["cpu_seconds"] / by_name["FSeSim"]["cpu_seconds"]
    print(
        f"LSeSim / FSeSim time per step: {ratio:.2f} wall, {cpu_ratio:.2f} cpu (target < {target:.2f} = "
        f"5.5 s / 3.9 s, published {published:.2f}) " + ("PASS" if ratio < target else "MISS")
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sizes of table 1")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--parts", nargs="+", default=["loss", "step"], choices=["loss", "step"], help="which tables to produce"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(s % 8 or s < 64 for s in args.sizes):
        parser.error("--repeats must be >= 1 and --sizes multiples of 8, at least 64")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, device {device}, CPU threads {torch.get_num_threads()}, repeats {args.repeats}",
        flush=True,
    )
    start = time.perf_counter()
    if "loss" in args.parts:
        check_equivalence(device)
        print("loop reference matches SpatialCorrelativeLoss (value and gradient, rel. 1e-4)", flush=True)
        print_loss_table(loss_table(args.sizes, args.repeats, device), device, args.repeats)
    if "step" in args.parts:
        with tempfile.TemporaryDirectory() as root:
            rows = step_rows(args.repeats, device, root)
        print_step_table(rows, device, args.repeats)
    print(f"\ntotal benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
