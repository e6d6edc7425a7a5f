"""Batching: ``collate`` and ``build_dataloader``.

The loader's sampler yields ``(index, epoch)`` pairs, the epoch read from the dataset in the main
process when an epoch starts. Workers (which hold their own copy of the dataset, kept alive
across epochs with ``persistent_workers``) therefore see ``dataset.set_epoch`` and seed each
sample from (seed, epoch, index): batches do not depend on the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

__all__ = ["collate", "IndexEpochSampler", "build_dataloader", "worker_init"]


def _stack_images(imgs: list[torch.Tensor]) -> torch.Tensor:
    out = torch.empty((len(imgs), *imgs[0].shape), dtype=imgs[0].dtype)
    if get_worker_info() is not None:
        # the batch reaches the main process through shared memory: write it there directly
        out.share_memory_()
    # numpy copies in this thread; torch.stack would start an OpenMP region, which costs
    # milliseconds per batch when the cores are busy (as they are while training on CPU)
    np.stack([im.numpy() for im in imgs], out=out.numpy())
    return out


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples: ``img`` (B, 3, H, W) uint8, ``targets`` (M, 6) float32
    ``[batch_index, cls, x1, y1, x2, y2]``, and lists ``paths``, ``image_ids``, ``orig_shapes``,
    ``ratios``, ``pads``."""
    labels = [b["labels"].numpy().reshape(-1, 5) for b in batch]
    index = np.repeat(np.arange(len(batch), dtype=np.float32), [len(x) for x in labels])
    targets = np.concatenate([index[:, None], np.concatenate(labels).astype(np.float32)], axis=1)
    return {
        "img": _stack_images([b["img"] for b in batch]),
        "targets": torch.from_numpy(targets),
        "paths": [b["path"] for b in batch],
        "image_ids": [b["image_id"] for b in batch],
        "orig_shapes": [b["orig_shape"] for b in batch],
        "ratios": [b["ratio"] for b in batch],
        "pads": [b["pad"] for b in batch],
    }


class IndexEpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)``; the order is a pure function of (seed, epoch).

    sampler: an inner index sampler (e.g. ``DistributedSampler``) used instead of the built-in
    order; its ``set_epoch`` is called with the dataset's epoch at the start of each epoch.
    ``set_epoch`` here sets the dataset's epoch (one place for the trainer to call).
    """

    def __init__(
        self,
        dataset: Dataset,
        shuffle: bool = False,
        seed: int = 0,
        sampler: Sampler[int] | None = None,
    ) -> None:
        self.dataset, self.shuffle, self.seed, self.sampler = dataset, shuffle, seed, sampler

    @property
    def epoch(self) -> int:
        return int(getattr(self.dataset, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        else:
            self.dataset.epoch = int(epoch)

    def _sync_inner(self, epoch: int) -> None:
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _order(self, epoch: int) -> Iterator[int]:
        if self.sampler is not None:
            self._sync_inner(epoch)
            return iter(self.sampler)
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return iter(range(n))
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return iter(torch.randperm(n, generator=g).tolist())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self._order(epoch):
            yield int(i), epoch

    def __len__(self) -> int:
        self._sync_inner(self.epoch)  # an inner sampler's length may depend on its epoch
        src = self.sampler if self.sampler is not None else self.dataset
        return len(src) if isinstance(src, Sized) else 0


class _ForkSafeLoader(DataLoader):
    """DataLoader that forks its workers while OpenCV's thread pool is down to one thread.

    A forked child inherits OpenCV's pool bookkeeping but not its threads; changing the thread
    count there (as ``worker_init`` does) then waits forever for threads that do not exist. With
    the parent at one thread during the fork, the child has no pool to tear down. The parent's
    setting is restored right after.
    """

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return super().__iter__()
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return super().__iter__()
        finally:
            cv2.setNumThreads(previous)


def worker_init(worker_id: int) -> None:
    """Per-worker set-up: one thread each for OpenCV and torch (the workers are the parallelism),
    and a distinct global numpy seed for any third-party code that uses it."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    np.random.seed(torch.initial_seed() % 2**32)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = True,
    rank: int = 0,
    world_size: int = 1,
    timeout: float = 0,
    batches: Sequence[Sequence[int]] | None = None,
    collate_fn: Callable[[list], Any] = collate,
) -> DataLoader:
    """DataLoader over ``dataset`` with ``collate``.

    workers: worker processes, capped at ``os.cpu_count()`` (0 loads in the calling process).
    shuffle: a new order each epoch, a function of (seed, epoch). rank/world_size > 1: each rank
    reads its shard through a ``DistributedSampler`` (unless ``sampler`` is given). Call
    ``dataset.set_epoch(e)`` (or ``loader.sampler.set_epoch(e)``) before each epoch.
    timeout: seconds to wait for a batch from the workers before raising (0: forever).
    batches: fixed lists of dataset indices, one per batch, in order (rectangular validation,
        ``data.rect.enable_rect``); replaces batch_size, shuffle, sampler and drop_last.
    collate_fn: how samples become a batch (default: detection's ``collate``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batches is not None and (shuffle or sampler is not None or world_size > 1):
        raise ValueError("fixed batches cannot be combined with shuffle, a sampler or ranks")
    if sampler is None and world_size > 1:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=drop_last,
        )  # fmt: skip
    workers = max(0, min(int(workers), os.cpu_count() or 1))
    generator = torch.Generator()
    generator.manual_seed(seed)
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": persistent_workers, "worker_init_fn": worker_init}
    if batches is not None:
        # a list of index lists is a valid batch sampler (iterable with a length)
        extra["batch_sampler"] = [[int(i) for i in b] for b in batches]
    else:
        extra["batch_size"], extra["drop_last"] = batch_size, drop_last
        extra["sampler"] = IndexEpochSampler(dataset, shuffle=shuffle, seed=seed, sampler=sampler)
    return _ForkSafeLoader(
        dataset,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        generator=generator,
        timeout=timeout if workers > 0 else 0,
        **extra,
    )
