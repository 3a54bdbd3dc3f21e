"""Seconds per training step, peak memory and achieved FLOP rate under every speed switch.

    python benchmarks/bench_step.py [--device cpu|cuda] [--repeats N] [--threads N]
                                    [--models fsesim fsesim_idt lsesim sinsc] [--amp off bf16 fp16]
                                    [--channels_last off on] [--compile off on]
                                    [--sizes 256 512] [--sinsc_size 128] [--configs fp32 bf16+cl ...]
                                    [--timeout SECONDS]

Times ``optimize_parameters`` of ``sc`` FSeSim and ``sc`` LSeSim (``--learned_attn --augment
--patch_size 32``) at 256² batch 1 (``--sizes``) and of ``sinsc`` at 128² batch 16 (``--sinsc_size``),
for every combination of ``--amp``, ``--channels_last`` and ``--compile`` that the device supports,
or only for the ``--configs`` named (``fp32`` or an --amp type, plus ``+cl`` for channels-last and
``+compile``), and prints a Markdown table.
Unless ``--amp`` is given, a 16-bit type whose matrix multiply is slower than float32 on the device
(emulated, as bf16 and fp16 on CPUs without AVX512-BF16/AMX) is left out, with a note.
Each configuration runs in a fresh process, so compile caches, threads and peak memory do not leak
between rows. Batches are random images and the VGG16 has random weights: neither changes the time.

- s/step: median wall time of ``--repeats`` steps after warm-up (compiling happens in the warm-up);
  images/s: the batch size divided by s/step; CPU s/step: the same steps' process CPU time (all
  threads), which shows whether other programs competed for the cores.
- peak MB: CUDA, ``torch.cuda.max_memory_allocated`` over the timed steps; CPU, the process's peak
  resident memory minus its resident memory after importing torch.
- GFLOP/step: multiply-adds x 2 of one float32 eager step counted by ``torch.utils.flop_counter``
  (forward and backward of every network); the switches do not change it. Achieved rate = GFLOP/step
  divided by s/step, against the measured peak of a large matrix multiply in the step's compute
  dtype (float32, or the --amp dtype) on the same device.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {  # name: (train.py flags, batch size)
    "fsesim": (["--model", "sc"], 1),
    # the setting that keeps the photo's polarity (docs/polarity.md): one more G pass, on real_B
    "fsesim_idt": (["--model", "sc", "--lambda_identity", "1"], 1),
    # the cheaper anchor measured against it: the identity pass on real_B at half its side
    "fsesim_idt_half": (["--model", "sc", "--lambda_identity", "1", "--identity_scale", "0.5"], 1),
    "lsesim": (["--model", "sc", "--learned_attn", "--augment", "--patch_size", "32"], 1),
    "sinsc": (["--model", "sinsc"], 16),
}
NAMES = {
    "fsesim": "sc FSeSim",
    "fsesim_idt": "sc FSeSim + identity 1",
    "fsesim_idt_half": "sc FSeSim + identity 1 at half size",
    "lsesim": "sc LSeSim p32",
    "sinsc": "sinsc",
}
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}
TINY_FLAGS = ["--ngf", "8", "--ndf", "8"]  # --tiny: networks small enough to check the script in seconds


def label(config: dict) -> str:
    """e.g. 'sc FSeSim 256² b1'."""
    return f"{NAMES[config['model']]} {config['size']}² b{config['batch']}"


def parse_config(spec: str) -> tuple[str, bool, bool]:
    """'fp32' | 'bf16' | 'fp16', optionally with '+cl' and/or '+compile' -> (amp, channels_last, compile)."""
    head, *switches = spec.split("+")
    if head not in ("fp32", "bf16", "fp16") or not set(switches) <= {"cl", "compile"}:
        raise argparse.ArgumentTypeError(f"--configs {spec}: use fp32, bf16 or fp16, then +cl and/or +compile")
    return ("off" if head == "fp32" else head), "cl" in switches, "compile" in switches


def _rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


class _TotalOnly:
    """Stands in for FlopCounterMode's per-module tracker, which hooks module inputs and so breaks
    torch.autograd.grad (the gradient penalty); only the total is needed here."""

    parents = {"Global"}

    def __enter__(self) -> "_TotalOnly":
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(torch, config: dict, save_dir: str):
    """The model of ``config`` built through the real options, and one random batch for it."""
    from models import create_model
    from options.train_options import TrainOptions
    from util.seeding import seed_everything

    flags, size, batch_size = MODELS[config["model"]][0], config["size"], config["batch"]
    argv = flags + [
        "--crop_size",
        str(size),
        "--load_size",
        str(size),
        "--batch_size",
        str(batch_size),
        "--vgg_weights",
        "random",
        "--checkpoints_dir",
        save_dir,
        "--name",
        "bench",
        "--gpu_ids",
        "0" if config["device"] == "cuda" else "-1",
        "--amp",
        config["amp"],
    ]
    argv += ["--channels_last"] if config["channels_last"] else []
    argv += ["--compile"] if config["compile"] else []
    argv += TINY_FLAGS if config["tiny"] else []
    opt = TrainOptions(argv).parse()
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(opt)
    model.setup()
    generator = torch.Generator().manual_seed(0)
    images = lambda: torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1  # noqa: E731
    batch = {"A": images(), "B": images(), "A_paths": ["random"] * batch_size}
    if opt.augment:
        batch.update(A_aug=images(), B_aug=images())
    return model, batch


def measure(config: dict) -> dict:
    """Run one configuration in this process; returns its numbers (see the module docstring)."""
    import torch

    from models.wrappers import CompiledOrEager

    baseline = _rss_mb()
    device = torch.device(config["device"])
    with tempfile.TemporaryDirectory() as save_dir:
        model, batch = _build(torch, config, save_dir)

        def step() -> None:
            model.set_input(batch)
            model.optimize_parameters()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3 if config["compile"] else 1):
                step()
        _sync(torch, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        wall, cpu = [], []
        for _ in range(config["repeats"]):
            _sync(torch, device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            _sync(torch, device)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
        eager = [
            name
            for name in ("G", "D")
            if isinstance(getattr(model, "net" + name, None), CompiledOrEager) and getattr(model, "net" + name).failed
        ]
        result = {
            "s": statistics.median(wall),
            "cpu_s": statistics.median(cpu),
            "peak_mb": peak,
            "eager": eager,
            "warnings": sorted({str(w.message)[:200] for w in caught}),
        }
        if config["count_flops"]:
            from torch.utils.flop_counter import FlopCounterMode

            counter = FlopCounterMode(display=False)
            counter.mod_tracker = _TotalOnly()
            with counter:
                step()
            result["gflop"] = counter.get_total_flops() / 1e9
    return result


def matmul_peaks(device_name: str, dtypes: list[str], repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an n x n matrix multiply per dtype (median of ``repeats`` after one warm-up)."""
    import torch

    device = torch.device(device_name)
    n = MATMUL_SIZE[device.type]
    peaks = {}
    for name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            _sync(torch, device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(torch, device)
            times.append(time.perf_counter() - start)
        peaks[name] = 2 * n**3 / statistics.median(times) / 1e9
    return peaks


def _in_subprocess(mode: str, payload: dict, threads: int | None, timeout: float | None = None) -> dict:
    """Run ``bench_step.py --child <mode> <json>`` and return the JSON object it prints last."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", mode, json.dumps(payload)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def supported_switches(device: str) -> dict[str, list]:
    """Which --amp / --channels_last / --compile values apply on ``device`` (this process's torch)."""
    import torch

    amp = ["off"]
    available = getattr(torch.amp.autocast_mode, "is_autocast_available", lambda kind: kind in ("cpu", "cuda"))
    if available(device):
        bf16 = device == "cpu" or torch.cuda.is_bf16_supported()
        amp += ["bf16", "fp16"] if bf16 else ["fp16"]
    compiled = [False, True] if hasattr(torch, "compile") else [False]
    return {"amp": amp, "channels_last": [False, True], "compile": compiled}


def format_table(rows: list[dict], peaks: dict[str, float], device: str) -> str:
    """Markdown table of the measured rows."""
    unit, scale = ("TFLOP/s", 1e3) if device == "cuda" else ("GFLOP/s", 1.0)
    head = (
        f"| model | --amp | channels_last | compile | s/step | images/s | CPU s/step | peak MB | GFLOP/step | "
        f"achieved {unit} | matmul peak {unit} | % of peak | notes |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        config, result = row["config"], row["result"]
        cells = [
            label(config),
            config["amp"],
            "on" if config["channels_last"] else "off",
            "on" if config["compile"] else "off",
        ]
        if "error" in result:
            lines.append("| " + " | ".join(cells + ["–"] * 8 + [f"failed: {result['error']}"]) + " |")
            continue
        gflop = row.get("gflop")
        dtype = "fp32" if config["amp"] == "off" else config["amp"]
        achieved = gflop / result["s"] if gflop else None
        notes = f"{'+'.join(result['eager'])} fell back to eager" if result["eager"] else ""
        cells += [
            f"{result['s']:.3f}",
            f"{config['batch'] / result['s']:.3g}",
            f"{result['cpu_s']:.2f}",
            f"{result['peak_mb']:.0f}",
            f"{gflop:.1f}" if gflop else "–",
            f"{achieved / scale:.3g}" if achieved else "–",
            f"{peaks[dtype] / scale:.3g} ({dtype})",
            f"{100 * achieved / peaks[dtype]:.1f}" if achieved else "–",
            notes,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the measuring processes")
    parser.add_argument("--models", nargs="+", default=["fsesim", "lsesim", "sinsc"], choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[256], help="image sizes of the sc models")
    parser.add_argument("--sinsc_size", type=int, default=128, help="crop size of the sinsc model")
    parser.add_argument("--amp", nargs="+", default=None, choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels_last", nargs="+", default=None, choices=["off", "on"])
    parser.add_argument("--compile", nargs="+", default=None, choices=["off", "on"])
    parser.add_argument(
        "--configs",
        nargs="+",
        type=parse_config,
        default=None,
        help="only these configurations, e.g. fp32 bf16 bf16+cl bf16+cl+compile (instead of every "
        "combination of --amp, --channels_last and --compile)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds one configuration may take")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="check the script only: 8-filter networks, sinsc batch 2 (use with small --sizes)",
    )
    return parser.parse_args()


def choose_configs(args: argparse.Namespace) -> tuple[list[tuple[str, bool, bool]], dict[str, float], list[str]]:
    """The (amp, channels_last, compile) combinations to run, the matmul peaks and notes on what was left out."""
    switches = supported_switches(args.device)
    for key in ("amp", "channels_last", "compile"):
        wanted = getattr(args, key)
        if wanted is not None:
            values = wanted if key == "amp" else [v == "on" for v in wanted]
            switches[key] = [v for v in switches[key] if v in values]
    combos = list(itertools.product(*switches.values())) if args.configs is None else args.configs
    dtypes = ["fp32"] + sorted({amp for amp, _, _ in combos if amp != "off"})
    peaks = _in_subprocess("peak", {"device": args.device, "dtypes": dtypes}, args.threads)
    notes = []
    if args.amp is None and args.configs is None:  # by default, skip a 16-bit type the device only emulates
        for amp in dtypes[1:]:
            if peaks[amp] < peaks["fp32"]:
                combos = [combo for combo in combos if combo[0] != amp]
                notes.append(
                    f"--amp {amp} not run: the device's {amp} matmul ({peaks[amp]:.3g} GFLOP/s) is slower "
                    f"than float32 ({peaks['fp32']:.3g} GFLOP/s), i.e. not native; pass --amp {amp} to run it"
                )
    if args.device == "cuda":
        import torch

        notes.append(
            f"float32 convolutions may run as TF32 (torch.backends.cudnn.allow_tf32="
            f"{torch.backends.cudnn.allow_tf32}); the fp32 matmul peak is measured in full float32"
        )
    return combos, peaks, notes


def main() -> None:
    args = parse_args()
    combos, peaks, notes = choose_configs(args)
    rows = []
    for model in args.models:
        for size in [args.sinsc_size] if model == "sinsc" else args.sizes:
            model_rows = []
            for amp, channels_last, compiled in combos:
                # The first configuration of each model and size also counts the step's FLOPs.
                batch = 2 if args.tiny and model == "sinsc" else MODELS[model][1]
                config = {
                    "model": model,
                    "size": size,
                    "batch": batch,
                    "tiny": args.tiny,
                    "device": args.device,
                    "amp": amp,
                    "channels_last": channels_last,
                    "compile": compiled,
                    "repeats": args.repeats,
                    "count_flops": not model_rows,
                }
                result = _in_subprocess("step", config, args.threads, args.timeout)
                model_rows.append({"config": config, "result": result})
                print(
                    f"  {label(config)} amp={amp} channels_last={channels_last} compile={compiled}: "
                    f"{result.get('s', float('nan')):.3f} s",
                    file=sys.stderr,
                    flush=True,
                )
            gflop = model_rows[0]["result"].get("gflop")
            rows += [dict(row, gflop=gflop) for row in model_rows]
    import torch

    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"Device: {name}; torch {torch.__version__}; threads: {args.threads or 'default'}; repeats: {args.repeats}\n")
    print(format_table(rows, peaks, args.device))
    print("".join(f"\n- {note}" for note in notes))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.path.insert(0, REPO_ROOT)
        payload = json.loads(sys.argv[3])
        out = measure(payload) if sys.argv[2] == "step" else matmul_peaks(payload["device"], payload["dtypes"])
        print(json.dumps(out))
    else:
        main()
