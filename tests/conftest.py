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
