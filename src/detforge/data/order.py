"""Training order: a pure function of (seed, epoch), so an epoch can resume mid-way."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "lone_last_image", "train_batches"]


def train_batches(images: int, batch: int) -> int:
    """Training batches in an epoch of ``images`` per process: a last batch of a single image
    is dropped (BatchNorm cannot normalise one image where a feature map is 1x1, and its
    statistics would be one image's), every other partial batch is kept."""
    return images // batch + (images % batch > 1)


def lone_last_image(images: int, batch: int) -> bool:
    """Whether ``train_batches`` drops a last batch of one image (a loader's ``drop_last``)."""
    return batch > 1 and images % batch == 1


class EpochSampler(Sampler[int]):
    """Shuffled (or sequential) indices for one epoch, split across ``world_size`` processes.

    ``resume_at(e, k)`` makes epoch ``e`` start after the first ``k`` samples of this process's
    share, which is how an interrupted epoch resumes on exactly the remaining batches; other
    epochs are whole.
    Every rank gets the same number of samples (the order is padded by wrapping around).
    """

    def __init__(
        self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(size / world_size)
        self.epoch = 0
        self.resume_epoch, self.resume_skip = -1, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        self.resume_epoch, self.resume_skip = epoch, skip

    @property
    def skip(self) -> int:
        return self.resume_skip if self.epoch == self.resume_epoch else 0

    def order(self) -> list[int]:
        """This rank's full index order for the current epoch (ignores ``skip``)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(self.size, generator=g).tolist()
        else:
            idx = list(range(self.size))
        total = self.per_rank * self.world_size
        idx += idx[: total - len(idx)]
        return idx[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip
