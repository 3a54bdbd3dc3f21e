#!/usr/bin/env bash
# The one device check for a GPU machine: correctness of the CUDA paths, then the step table.
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU: about 5 minutes
#   bash benchmarks/gpu_check.sh --cpu-dry-run   # anywhere: the same steps on the CPU, tiny (about a minute)
#
# (a) runs every test marked `cuda` (AMP bf16/fp16 with the GradScaler, channels-last, --compile,
#     pinned batches and a step that never waits for the host, the NCCL process group, device choice
#     under torchrun); (b) times the training step with benchmarks/bench_step.py: sc FSeSim and
#     LSeSim at 256² (float32, bf16, bf16 + channels-last, and for FSeSim bf16 + channels-last +
#     compile) and 512² (float32, bf16 + channels-last), sinsc at 128² batch 16 (as FSeSim 256²),
#     and prints the Markdown tables of benchmarks/README.md's GPU rows. Each phase prints its time.
# The dry run checks the script itself: the cuda tests are collected and skipped (no GPU), and the
# benchmark runs once per model at 32² with 8-filter networks in float32: its figures mean nothing.
# PYTHON (default: .venv/bin/python if present, else python3) picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DRY=0
case "${1:-}" in
    --cpu-dry-run) DRY=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--cpu-dry-run]" >&2; exit 2 ;;
esac
START=$SECONDS
TESTS_FAILED=0
phase() { echo; echo "== $* ($((SECONDS - START)) s so far)"; }

if [[ $DRY == 0 ]] && ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device here; use --cpu-dry-run to check the script on the CPU" >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() \
if torch.cuda.is_available() else 'no CUDA')"

phase "(a) CUDA-marked tests"
if [[ $DRY == 1 ]]; then
    CUDA_VISIBLE_DEVICES="" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests   # skipped, even on a GPU
else   # a failing test is reported at the end: the benchmark still runs (device time is scarce)
    "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests || TESTS_FAILED=1
fi

bench() { "$PYTHON" benchmarks/bench_step.py "$@"; }
if [[ $DRY == 1 ]]; then
    phase "(b) step benchmark, dry run (CPU, tiny)"
    bench --device cpu --tiny --sizes 32 --sinsc_size 32 --configs fp32 --repeats 1 --threads 1 --timeout 120
else
    phase "(b1) sc FSeSim 256²"
    bench --device cuda --models fsesim --sizes 256 --configs fp32 bf16 bf16+cl bf16+cl+compile --repeats 10 \
        --timeout 240
    phase "(b2) sc LSeSim 256²"
    bench --device cuda --models lsesim --sizes 256 --configs fp32 bf16 bf16+cl --repeats 10 --timeout 120
    phase "(b3) sc FSeSim and LSeSim 512²"
    bench --device cuda --models fsesim lsesim --sizes 512 --configs fp32 bf16+cl --repeats 5 --timeout 120
    phase "(b4) sinsc 128² batch 16"
    bench --device cuda --models sinsc --configs fp32 bf16 bf16+cl bf16+cl+compile --repeats 10 --timeout 240
fi
phase "gpu_check done"
if [[ $TESTS_FAILED == 1 ]]; then
    echo "gpu_check: some CUDA-marked tests failed (see phase (a))" >&2
    exit 1
fi
