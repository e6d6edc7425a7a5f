"""torch.distributed for ``torchrun``: process-group set-up and the few collectives training uses.

``torchrun --nproc_per_node N -m detforge.cli train ...`` (or the ``detforge`` script) starts N
processes; each reads its rank from the environment. Without ``WORLD_SIZE`` > 1 every function
here is a no-op, so single-process training runs exactly the same code.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo", "init_distributed", "all_reduce_sum", "broadcast_object", "barrier", "shutdown",
]  # fmt: skip


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
    """Leave the process group: wait for every process, destroy the group, then give Gloo's
    worker threads the GIL for a moment before this process can exit.

    Why the last step: a Gloo worker thread frees each finished collective itself, after the
    caller has already been woken, and freeing a tensor that Python made (a DDP comm hook's
    bucket, the totals of ``all_reduce_sum``) needs the GIL. If the interpreter is finalising
    by then, the thread is ended mid-destructor and the process aborts
    (``terminate called without an active exception``, SIGABRT), which fails the whole
    torchrun job after training finished. destroy_process_group() does not join those
    threads. Measured with two processes that exit right after: a bare destroy aborted 9 of
    80 runs on an idle machine; barrier then destroy, 0 of 80 idle but 6 of 160 under load;
    barrier, destroy and this pause, 0 of 240 under the same load.
    """
    if info.enabled and dist.is_initialized():
        barrier(info)
        dist.destroy_process_group()
        time.sleep(0.1)  # releases the GIL; see above
