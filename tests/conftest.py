"""Shared fixtures. The repository root is first on sys.path through pyproject.toml's pytest ``pythonpath``."""

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Every test runs with one torch thread. Small tensors on a shared CPU: a second intra-op thread
    costs more in synchronisation than it saves (several times slower when other processes load the
    cores). Restored afterwards; processes the tests start choose their own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, request):
    """The tiny unaligned data set: random 40 x 48 PNGs in trainA, trainB, testA and testB, as many per
    folder as the test module's ``TINY_IMAGES`` says (2 when it says nothing). One per module, shared
    by its tests: a test that changes the folders works on a copy."""
    from helpers import write_unaligned

    count = getattr(request.module, "TINY_IMAGES", 2)
    return write_unaligned(tmp_path_factory.mktemp("tiny") / "data", count)


@pytest.fixture
def stub_python(tmp_path):
    """Run a launcher (``scripts/*.sh``) with ``$PYTHON`` set to a stub that only records each call: its
    working directory, then its arguments, one per line. NAME, DATAROOT, GPU_IDS and VARIANT are taken
    out of the environment first. ``run(script, *args, **env)`` returns the finished bash process and
    every call so far, each as ``[cwd, arg, ...]``."""
    log = tmp_path / "python_calls.log"
    stub = tmp_path / "python"
    stub.write_text(f'#!/usr/bin/env bash\n{{ pwd; printf "%s\\n" "$@"; echo "<end of call>"; }} >> "{log}"\n')
    stub.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("NAME", "DATAROOT", "GPU_IDS", "VARIANT")}

    def run(script: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        done = subprocess.run(
            ["bash", str(Path(REPO_ROOT) / script), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**base, "PYTHON": str(stub), **env},
            timeout=60,
        )
        calls = log.read_text().split("<end of call>\n")[:-1] if log.exists() else []
        return done, [call.splitlines() for call in calls]

    return run


# ---- CUDA-only tests --------------------------------------------------------------------------
# Tests marked ``cuda`` check GPU paths (benchmarks/gpu_check.sh runs them on a GPU machine). Without
# CUDA they are skipped, never passed, and the reason is printed once at the end of the session.
NO_CUDA = "no CUDA device (torch.cuda.is_available() is False); run them with bash benchmarks/gpu_check.sh on a GPU"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and report.longrepr[2].endswith(NO_CUDA)
    ]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} CUDA tests skipped (not passed): {NO_CUDA}")
