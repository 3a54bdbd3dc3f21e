"""benchmarks/gpu_check.sh and the step benchmark's options, on the CPU."""

import argparse
import os
import re
import subprocess
import sys

import pytest
from helpers import ROOT, load_script

bench_step = load_script("benchmarks/bench_step.py")


def test_configs_name_amp_channels_last_and_compile():
    assert bench_step.parse_config("fp32") == ("off", False, False)
    assert bench_step.parse_config("bf16+cl") == ("bf16", True, False)
    assert bench_step.parse_config("fp16+compile+cl") == ("fp16", True, True)
    for bad in ("fp64", "bf16+nhwc", "cl"):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"--configs {bad}: use fp32")):
            bench_step.parse_config(bad)


@pytest.mark.slow
def test_gpu_check_dry_run_runs_end_to_end_on_the_cpu():
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "CUDA tests skipped (not passed): no CUDA device" in out
    assert re.search(r"^\d+ skipped, \d+ deselected in", out, re.M) and not re.search(r"\d+ (passed|failed)", out)
    rows = [line for line in out.splitlines() if line.startswith("| s")]
    assert [row.split(" | ")[0] for row in rows] == ["| sc FSeSim 32² b1", "| sc LSeSim p32 32² b1", "| sinsc 32² b2"]
    assert not any("failed" in row for row in rows) and out.rstrip().endswith("s so far)")


@pytest.mark.slow  # starts processes
def test_gpu_check_refuses_a_machine_without_cuda():
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES=""),
    )
    assert done.returncode == 2 and "torch sees no CUDA device here" in done.stderr
    assert "CUDA-marked tests" not in done.stdout


@pytest.mark.slow
def test_loader_benchmark_prints_a_row_per_setting(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_loader.py",
            "--images",
            "2",
            "--epochs",
            "1",
            "--num_threads",
            "0",
            "1",
            "--no_step",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| o")]
    assert [(row[0], row[1]) for row in rows] == [("| off", "0"), ("| off", "1"), ("| on", "0"), ("| on", "1")]
    assert all(float(row[2]) > 0 for row in rows)
    bench_loader = load_script("benchmarks/bench_loader.py")
    bench_loader.write_images(str(tmp_path), 1, seed=0)
    from PIL import Image

    with Image.open(tmp_path / "0.jpg") as image:
        assert image.size == (256, 256) and image.format == "JPEG"
