"""Multi-process training with torchrun: one process per GPU (or several CPU processes), joined by DDP.

``torchrun --nproc_per_node=N train.py ...`` sets RANK, LOCAL_RANK and WORLD_SIZE; without them (a
plain ``python train.py``) everything here is a no-op for a single process. NCCL joins GPUs, gloo CPUs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(gpu_ids: list[int]) -> None:
    """Join the process group from torchrun's variables (env://); no-op for a single process."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    if gpu_ids:
        torch.cuda.set_device(device_for(gpu_ids))
    dist.init_process_group(backend="nccl" if gpu_ids else "gloo")


def device_for(gpu_ids: list[int]) -> torch.device:
    """This process's device: the CPU when ``gpu_ids`` is empty; alone, cuda:<first id>; under torchrun,
    the LOCAL_RANK-th id when ``gpu_ids`` names one per process on this node, else cuda:LOCAL_RANK."""
    if not gpu_ids:
        return torch.device("cpu")
    if not launched_by_torchrun():
        return torch.device(f"cuda:{gpu_ids[0]}")
    local_rank = int(os.environ["LOCAL_RANK"])
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return torch.device(f"cuda:{gpu_ids[local_rank] if len(gpu_ids) >= per_node else local_rank}")


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints."""
    return get_rank() == 0


def print0(*args: object, **kwargs: object) -> None:
    """print on the main process only."""
    if is_main_process():
        print(*args, **kwargs)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (at the end of training)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on each of N ranks -> (N * B, ...) on every rank, rank 0's rows first; no gradient.

    Every rank must pass a tensor of the same shape.
    """
    if get_world_size() == 1:
        return x
    out = torch.empty((get_world_size() * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # newer name; older torch lacks it
    gather(out, x.contiguous())
    return out


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``x`` over all ranks (every rank passes the same shape; NCCL: on its GPU).

    ``x`` itself without a process group; otherwise a new tensor (one all-reduce), ``x`` is left alone.
    """
    if not dist.is_initialized():
        return x
    total = x.clone()
    dist.all_reduce(total)
    return total / get_world_size()


def average_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over all ranks (every rank passes the same keys, in the same order)."""
    if not dist.is_initialized() or not values:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    return dict(zip(values, mean_over_ranks(stacked).tolist()))
