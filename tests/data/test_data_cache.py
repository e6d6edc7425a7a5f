"""Label cache: hit, invalidation, corruption, location (detforge.data.cache)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from detforge.data import YoloDataset
from detforge.data.cache import default_cache_dir


def _load(root: Path, cache_dir: Path, **kw) -> YoloDataset:
    return YoloDataset(root / "images/train", ["a", "b"], cache_dir=cache_dir, **kw)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_second_load_hits_cache_outside_data(yolo_root: Path, cache_dir: Path) -> None:
    before = _files(yolo_root)
    first = _load(yolo_root, cache_dir)
    second = _load(yolo_root, cache_dir)
    assert not first.cache_hit and second.cache_hit
    assert _files(yolo_root) == before  # nothing written next to the data
    assert second.cache_path.parent == cache_dir / "labels"
    assert [p.suffix for p in second.cache_path.parent.iterdir()] == [".npz"]  # no temp left
    assert second.image_files == first.image_files and second.shapes == first.shapes
    for a, b in zip(first.labels, second.labels, strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.float32 and b.shape[1] == 5


def test_label_change_invalidates(yolo_root: Path, cache_dir: Path) -> None:
    _load(yolo_root, cache_dir)
    lab = yolo_root / "labels/train/b.txt"
    lab.write_text("0 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.1 0.1\n")
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and len(ds.labels[1]) == 2
    # same size, new mtime only
    lab.write_text("1 0.5 0.5 0.5 0.5\n0 0.2 0.2 0.1 0.1\n")
    st = lab.stat()
    os.utime(lab, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and ds.labels[1][:, 0].tolist() == [1, 0]
    assert _load(yolo_root, cache_dir).cache_hit


def _rewrite_keeping_size_and_mtime(path: Path, text: str, new_inode: bool = False) -> None:
    st = path.stat()
    assert len(text.encode()) == st.st_size
    if new_inode:  # as editors save: a new file moved over the old one
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_label_edit_with_same_size_and_mtime_invalidates(yolo_root: Path, cache_dir: Path) -> None:
    _load(yolo_root, cache_dir)
    lab = yolo_root / "labels/train/b.txt"
    _rewrite_keeping_size_and_mtime(lab, "0 0.5 0.5 0.5 0.5\n")  # class 1 -> 0
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and ds.labels[1][:, 0].tolist() == [0]
    assert _load(yolo_root, cache_dir).cache_hit


def test_large_label_file_is_checked_by_inode_and_ctime(
    yolo_root: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("detforge.data.cache.LABEL_HASH_LIMIT", 0)  # every file counts as large
    _load(yolo_root, cache_dir)
    assert _load(yolo_root, cache_dir).cache_hit
    lab = yolo_root / "labels/train/b.txt"
    _rewrite_keeping_size_and_mtime(lab, "0 0.5 0.5 0.5 0.5\n", new_inode=True)
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and ds.labels[1][:, 0].tolist() == [0]


def test_new_label_file_and_image_change_invalidate(yolo_root: Path, cache_dir, write_image):
    _load(yolo_root, cache_dir)
    (yolo_root / "labels/train/c.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and len(ds.labels[2]) == 1
    write_image(yolo_root / "images/train/c.jpg", 100, 50)
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and ds.shapes[2] == (50, 100)


def test_messages_and_strict_survive_the_cache(yolo_root: Path, cache_dir: Path) -> None:
    (yolo_root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2\n")
    first = _load(yolo_root, cache_dir)
    second = _load(yolo_root, cache_dir)
    assert second.cache_hit and second.warnings == first.warnings and len(first.warnings) == 1
    with pytest.raises(ValueError, match="a.txt:1"):
        _load(yolo_root, cache_dir, strict=True)


def test_corrupt_cache_falls_back(yolo_root: Path, cache_dir: Path) -> None:
    path = _load(yolo_root, cache_dir).cache_path
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    ds = _load(yolo_root, cache_dir)
    assert not ds.cache_hit and [len(x) for x in ds.labels] == [2, 1, 0]
    assert _load(yolo_root, cache_dir).cache_hit  # rewritten


def test_cache_disabled(yolo_root: Path, cache_dir: Path) -> None:
    ds = _load(yolo_root, cache_dir, cache=False)
    assert not ds.cache_hit and not cache_dir.exists()


def test_default_cache_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DETFORGE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DETFORGE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "detforge"
