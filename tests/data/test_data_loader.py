"""collate and build_dataloader: workers, seeding, epochs, sharding (detforge.data.loader)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Sampler

from detforge.data import YoloDataset, build_dataloader, collate


class PidDataset(YoloDataset):
    """Records which process (and how many threads) produced each sample."""

    log: Path

    def __getitem__(self, index: Any) -> dict[str, Any]:
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {cv2.getNumThreads()} {torch.get_num_threads()}\n")
        return super().__getitem__(index)


@pytest.fixture
def eight_images(tmp_path: Path, write_image) -> Path:
    root = tmp_path / "eight"
    for i in range(8):
        write_image(root / f"images/{i}.png", 40 + 4 * i, 32, value=(20 * i, 100, 200 - 20 * i))
        (root / "labels").mkdir(exist_ok=True)
        boxes = "".join(f"{j % 2} 0.5 0.5 {0.2 + 0.1 * j} 0.3\n" for j in range(i % 3))
        (root / f"labels/{i}.txt").write_text(boxes)
    return root


def _ds(root: Path, cls: type[YoloDataset] = YoloDataset, **kw) -> YoloDataset:
    return cls(root / "images", ["a", "b"], imgsz=64, augment=True, seed=5,
               cache_dir=root.parent / "cache", **kw)  # fmt: skip


def test_collate() -> None:
    def sample(n: int, i: int) -> dict[str, Any]:
        lab = torch.arange(n * 5, dtype=torch.float32).reshape(n, 5)
        return {"img": torch.full((3, 8, 8), i, dtype=torch.uint8), "labels": lab,
                "path": f"p{i}", "image_id": i, "orig_shape": (4, 6), "ratio": 0.5,
                "pad": (1, 2)}  # fmt: skip

    b = collate([sample(2, 0), sample(0, 1), sample(3, 2)])
    assert b["img"].shape == (3, 3, 8, 8) and b["img"].dtype == torch.uint8
    t = b["targets"]
    assert t.shape == (5, 6) and t.dtype == torch.float32
    assert t[:, 0].tolist() == [0, 0, 2, 2, 2]
    assert torch.equal(t[2:, 1:], torch.arange(15, dtype=torch.float32).reshape(3, 5))
    assert b["paths"] == ["p0", "p1", "p2"] and b["image_ids"] == [0, 1, 2]
    assert b["orig_shapes"] == [(4, 6)] * 3 and b["ratios"] == [0.5] * 3
    assert b["pads"] == [(1, 2)] * 3
    empty = collate([sample(0, 0)])
    assert empty["targets"].shape == (0, 6)


def _epoch(loader, dataset: YoloDataset, epoch: int) -> list[dict[str, Any]]:
    dataset.set_epoch(epoch)
    return list(loader)


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["img"], y["img"])
        and torch.equal(x["targets"], y["targets"])
        and x["image_ids"] == y["image_ids"]
        for x, y in zip(a, b, strict=True)
    )


def test_workers_real_processes_and_reproducible(eight_images: Path) -> None:
    ds0 = _ds(eight_images)
    main = build_dataloader(ds0, batch_size=3, shuffle=True, workers=0, seed=1)
    want = [_epoch(main, ds0, e) for e in (0, 1)]
    assert not _same(want[0], want[1])  # new order and augmentation each epoch

    # the parent's OpenCV pool is busy before the fork: workers must still start (no deadlock)
    big = np.zeros((1024, 1024, 3), np.uint8)
    for _ in range(5):
        cv2.warpAffine(big, np.array([[0.9, 0, 3], [0, 0.9, 4]]), (1024, 1024))
    ds2 = _ds(eight_images, PidDataset)
    ds2.log = eight_images / "pids.txt"
    loader = build_dataloader(ds2, batch_size=3, shuffle=True, workers=2, seed=1, timeout=30)
    assert loader.num_workers == min(2, os.cpu_count() or 1)
    # persistent workers hold their own dataset copy: the epoch must still reach them
    got = [_epoch(loader, ds2, e) for e in (0, 1)]
    assert _same(got[0], want[0]) and _same(got[1], want[1])

    rows = [line.split() for line in ds2.log.read_text().splitlines()]
    pids = {int(r[0]) for r in rows}
    assert len(rows) == 16 and os.getpid() not in pids
    assert len(pids) == loader.num_workers
    assert all(r[1:] == ["1", "1"] for r in rows)  # one OpenCV and one torch thread per worker


def test_sharding_by_rank(eight_images: Path) -> None:
    ds = _ds(eight_images)
    ids = []
    for rank in range(3):
        loader = build_dataloader(ds, batch_size=2, shuffle=True, workers=0, seed=0, rank=rank,
                                  world_size=3)  # fmt: skip
        ids.append([i for b in loader for i in b["image_ids"]])
    assert [len(x) for x in ids] == [3, 3, 3]  # padded to equal shares
    assert set(ids[0] + ids[1] + ids[2]) == set(range(8))


class RecordingSampler(Sampler[int]):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter([3, 1])

    def __len__(self) -> int:
        return 2


def test_passed_sampler_gets_dataset_epoch(eight_images: Path) -> None:
    ds, inner = _ds(eight_images), RecordingSampler()
    loader = build_dataloader(ds, batch_size=2, shuffle=False, workers=0, seed=0, sampler=inner)
    ds.set_epoch(4)
    (batch,) = list(loader)
    assert batch["image_ids"] == [3, 1] and inner.epochs[-1] == 4
    loader.sampler.set_epoch(6)  # the DDP habit works too
    assert ds.epoch == 6


def test_workers_capped_at_cpu_count(eight_images: Path) -> None:
    loader = build_dataloader(_ds(eight_images), batch_size=2, shuffle=False, workers=512, seed=0)
    assert loader.num_workers == (os.cpu_count() or 1)
