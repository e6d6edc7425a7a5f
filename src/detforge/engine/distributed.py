"""torch.distributed for ``torchrun``: process-group set-up and the few collectives training uses.

``torchrun --nproc_per_node N -m detforge.cli train ...`` (or the ``detforge`` script) starts N
processes; each reads its rank from the environment. Without ``WORLD_SIZE`` > 1 every function
here is a no-op, so single-process training runs exactly the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "broadcast_object", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(
    device: torch.device, timeout_minutes: float = 180
) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (NCCL on CUDA, Gloo on CPU).

    timeout_minutes: how long a collective waits (``train.dist_timeout``); the default of
    torch (10 or 30 min) can fire while the main process validates and writes the report.
    Returns the rank info and this process's device (``cuda:LOCAL_RANK`` on GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(minutes=timeout_minutes),
        )
    return DistInfo(rank, local, world), device


def all_reduce_sum(values: list[float], device: torch.device, info: DistInfo) -> list[float]:
    """Sum a few numbers over all processes (identity without distribution)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value of ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
