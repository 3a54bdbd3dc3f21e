"""Make the repository root importable (``import data``, ``import util``) when pytest runs; shared fixtures."""

import os
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors on a shared CPU: a second intra-op thread costs more in synchronisation than it
    saves (several times slower when other processes load the cores). Restored afterwards.
    Modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- CUDA-only tests --------------------------------------------------------------------------
# Tests marked ``cuda`` check GPU paths (benchmarks/gpu_check.sh runs them on a GPU machine). Without
# CUDA they are skipped, never passed, and the reason is printed once at the end of the session.
NO_CUDA = "no CUDA device (torch.cuda.is_available() is False); run them with bash benchmarks/gpu_check.sh on a GPU"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one (reason printed once)")
    config.addinivalue_line("markers", "slow: trains for minutes; `make test` runs it, `make test-fast` does not")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and report.longrepr[2].endswith(NO_CUDA)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} CUDA tests skipped (not passed): {NO_CUDA}")
