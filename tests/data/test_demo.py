"""Tests for the synthetic demo dataset (detforge.data.demo)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detforge.data import demo

IMGSZ = 256  # large enough for COCO-large objects (longest side up to 0.42 * imgsz)
SMALL = {"num_train": 4, "num_val": 2, "imgsz": 96, "seed": 3, "empty_fraction": 0.05}


def _read_labels(path: Path) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines()]
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    return demo.generate_demo_dataset(
        root, num_train=24, num_val=8, imgsz=IMGSZ, seed=0, empty_fraction=0.15
    )


def _label_files(yaml_path: Path, split: str) -> list[Path]:
    return sorted((yaml_path.parent / "labels" / split).glob("*.txt"))


def test_layout_and_data_yaml(dataset: Path) -> None:
    root = dataset.parent
    cfg = yaml.safe_load(dataset.read_text())
    assert cfg["path"] == "."
    assert list(cfg["names"].values()) == list(demo.CLASS_NAMES) and cfg["nc"] == 6
    for split, num in (("train", 24), ("val", 8)):
        assert not Path(cfg[split]).is_absolute()
        images = sorted((root / cfg["path"] / cfg[split]).glob("*.jpg"))
        labels = _label_files(dataset, split)
        assert len(images) == len(labels) == num
        assert [p.stem for p in images] == [p.stem for p in labels]
        assert cv2.imread(str(images[0])).shape == (IMGSZ, IMGSZ, 3)


def test_labels_are_valid_yolo_lines(dataset: Path) -> None:
    for split in ("train", "val"):
        for path in _label_files(dataset, split):
            for line in path.read_text().splitlines():
                fields = line.split(" ")
                assert len(fields) == 5 and fields[0].isdigit(), line
                cls, cx, cy, w, h = (float(f) for f in fields)
                assert 0 <= cls < len(demo.CLASS_NAMES)
                assert 0 < w <= 1 and 0 < h <= 1
                assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 - 1e-6 <= 1
                assert 0 <= cy - h / 2 + 1e-6 and cy + h / 2 - 1e-6 <= 1


def test_every_class_appears_and_sizes_span_small_to_large(dataset: Path) -> None:
    labels = np.concatenate([_read_labels(p) for p in _label_files(dataset, "train")])
    assert set(labels[:, 0].astype(int)) == set(range(len(demo.CLASS_NAMES)))
    side = labels[:, 3:5].max(1) * IMGSZ
    area = labels[:, 3] * labels[:, 4] * IMGSZ**2
    assert side.min() <= 16  # tiny objects exist
    assert side.max() >= 0.35 * IMGSZ  # ~40% of the image
    assert (area < 32**2).sum() >= 0.2 * len(area)  # COCO small is well represented
    assert ((area >= 32**2) & (area < 96**2)).any() and (area >= 96**2).any()


def test_empty_images(dataset: Path) -> None:
    sizes = [p.stat().st_size for p in _label_files(dataset, "train")]
    assert 1 <= sizes.count(0) <= 8  # ~15% of 24 requested
    counts = {
        f: sum(
            len(demo.render_demo_image(i, imgsz=64, seed=1, empty_fraction=f).classes) == 0
            for i in range(20)
        )
        for f in (0.0, 0.25)
    }
    assert counts[0.0] == 0 and 3 <= counts[0.25] <= 7


def test_boxes_are_tight_around_the_drawn_shape(dataset: Path) -> None:
    checked = 0
    for path in _label_files(dataset, "train")[:12]:
        index = int(path.stem)
        s = demo.render_demo_image(index, imgsz=IMGSZ, seed=0, empty_fraction=0.15)
        disk = (dataset.parent / "images" / "train" / f"{path.stem}.jpg").read_bytes()
        assert demo.encode_jpeg(s.image) == disk  # the file is this rendering
        labels = _read_labels(path)
        assert len(labels) == len(s.classes) == len(s.masks)
        np.testing.assert_array_equal(labels[:, 0], s.classes)
        xyxy = np.concatenate(
            [labels[:, 1:3] - labels[:, 3:5] / 2, labels[:, 1:3] + labels[:, 3:5] / 2], 1
        )
        xyxy *= IMGSZ
        assert not (s.masks.sum(0) > 1).any()  # visible masks do not overlap
        for box, mask, color in zip(xyxy, s.masks, s.colors, strict=True):
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = box
            assert x1 - 0.01 <= xs.min() and xs.max() + 1 <= x2 + 0.01  # encloses the shape
            assert y1 - 0.01 <= ys.min() and ys.max() + 1 <= y2 + 0.01
            assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1  # touches edges
            assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
            inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if inner.sum() >= 4:  # the mask is where this object's colour was painted
                assert np.abs(s.image[inner].mean(0) - color).max() < 40
            checked += 1
    assert checked >= 20


def test_determinism(tmp_path: Path) -> None:
    kw = {"num_train": 5, "num_val": 2, "imgsz": 128, "empty_fraction": 0.2}
    a = demo.generate_demo_dataset(tmp_path / "a", seed=7, **kw).parent
    b = demo.generate_demo_dataset(tmp_path / "b", seed=7, **kw).parent
    c = demo.generate_demo_dataset(tmp_path / "c", seed=8, **kw).parent
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".jpg":
            np.testing.assert_array_equal(cv2.imread(str(a / rel)), cv2.imread(str(b / rel)))
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    labels = [f for f in files if f.suffix == ".txt"]
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in labels)
    img = Path("images/train/000000.jpg")
    assert not np.array_equal(cv2.imread(str(a / img)), cv2.imread(str(c / img)))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*")}


def test_ensure_generates_once_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULTS", dict(SMALL))
    monkeypatch.setenv("DETFORGE_CACHE", str(tmp_path / "cache"))
    y = demo.ensure_demo_dataset()
    assert y == tmp_path / "cache" / "demo-v1" / "data.yaml" and y.is_file()
    assert len(list((y.parent / "images" / "train").glob("*.jpg"))) == 4
    before = _snapshot(y.parent)
    time.sleep(0.02)

    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(demo, "generate_demo_dataset", fail)
    assert demo.ensure_demo_dataset(tmp_path / "cache") == y
    assert _snapshot(y.parent) == before
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["demo-v1"]  # no temp left


def test_overrides_get_their_own_folder(tmp_path: Path) -> None:
    assert demo.demo_dataset_dir(tmp_path, num_train=500) == tmp_path / "demo-v1"
    other = demo.demo_dataset_dir(tmp_path, num_train=4)
    assert other.name.startswith("demo-v1-") and other != demo.demo_dataset_dir(tmp_path, seed=1)
    with pytest.raises(TypeError):
        demo.demo_dataset_dir(tmp_path, bogus=1)


def test_crash_leftovers_do_not_break_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULTS", dict(SMALL))
    stale, fresh = tmp_path / ".demo-v1.tmp-dead", tmp_path / ".demo-v1.tmp-busy"
    for d in (stale, fresh):  # half-written datasets of a crashed / a running process
        (d / "images" / "train").mkdir(parents=True)
        (d / "images" / "train" / "000000.jpg").write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    real = demo.generate_demo_dataset

    def crash(root: Path, **kwargs: object) -> Path:
        real(root, **{**kwargs, "num_val": 0})  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "generate_demo_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        demo.ensure_demo_dataset(tmp_path)
    assert not (tmp_path / "demo-v1").exists()
    monkeypatch.setattr(demo, "generate_demo_dataset", real)
    y = demo.ensure_demo_dataset(tmp_path)
    assert y.is_file() and len(list((y.parent / "images" / "val").glob("*.jpg"))) == 2
    assert not stale.exists() and fresh.exists()  # only old temp folders are cleaned up
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo-v1.tmp-busy", "demo-v1"]


def test_broken_target_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULTS", dict(SMALL))
    (tmp_path / "demo-v1" / "labels").mkdir(parents=True)  # e.g. a partial manual copy
    y = demo.ensure_demo_dataset(tmp_path)
    assert y.is_file() and (y.parent / "images" / "train" / "000003.jpg").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo-v1"]


def test_lost_race_uses_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULTS", dict(SMALL))
    real = demo.generate_demo_dataset
    winner = tmp_path / "demo-v1"

    def other_process_finishes_first(root: Path, **kwargs: object) -> Path:
        real(winner, **kwargs)  # type: ignore[arg-type]
        return real(root, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "generate_demo_dataset", other_process_finishes_first)
    y = demo.ensure_demo_dataset(tmp_path)
    assert y == winner / "data.yaml" and y.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo-v1"]


def test_concurrent_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULTS", dict(SMALL))
    barrier = threading.Barrier(3)
    results: list[Path | BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(demo.ensure_demo_dataset(tmp_path))
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "demo-v1" / "data.yaml"] * 3
    assert [p.name for p in tmp_path.iterdir()] == ["demo-v1"]
    assert len(list((tmp_path / "demo-v1" / "labels" / "train").iterdir())) == 4
