"""Decoded-image cache in RAM and on disk: identical samples, reuse, invalidation, size checks."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from detforge.data import DataError, YoloDataset, build_dataloader
from detforge.data import imcache as imcache_mod
from detforge.data.imcache import cache_images, cache_nbytes, disk_cache_file


def _dataset_root(tmp_path: Path) -> Path:
    """Three images: RGB noise, gray noise (BMP: its file size depends on its shape only), an
    EXIF-rotated JPEG (orientation 6)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(root / "images/a.png")
    Image.fromarray(rng.integers(0, 255, (70, 50), dtype=np.uint8)).save(root / "images/b.bmp")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(
        root / "images/c.jpg", exif=exif
    )
    for name, line in (("a", "0 0.5 0.5 0.4 0.4"), ("b", "1 0.3 0.3 0.2 0.2"), ("c", "")):
        (root / "labels" / f"{name}.txt").write_text(line + "\n")
    return root


def _ds(root: Path, augment: bool) -> YoloDataset:
    return YoloDataset(root / "images", ["x", "y"], imgsz=64, augment=augment, cache=False)


def _same(a: dict, b: dict) -> bool:
    return all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


@pytest.mark.parametrize("augment", [False, True])
def test_ram_cache_gives_identical_samples(
    tmp_path: Path, augment: bool, caplog: pytest.LogCaptureFixture
) -> None:
    root = _dataset_root(tmp_path)
    plain, cached = _ds(root, augment), _ds(root, augment)
    with caplog.at_level("INFO", logger="detforge.data"):
        cache = cache_images(cached, "ram")
    assert cache is not None and cache.nbytes == 60 * 90 * 3 + 70 * 50 + 80 * 40 * 3
    assert "caching 3 images in RAM: 28.6 KB" in caplog.text
    assert cached.shapes[2] == (80, 40)  # EXIF rotation applied, as the decoder does
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            assert _same(plain[i], cached[i])
    for i in range(3):
        assert np.array_equal(plain.load_image(i), cached.load_image(i))
        assert np.array_equal(plain.load_image(i, True), cached.load_image(i, True))
    stored = cache.arrays[1]
    assert stored.ndim == 2 and not stored.flags.writeable  # gray kept small, never written
    with pytest.raises(ValueError):
        cached.load_image(1, keep_gray=True)[0, 0] = 1
    cache_images(cached, "none")
    assert cached.image_cache is None


def test_ram_cache_shared_with_forked_workers(tmp_path: Path) -> None:
    root = _dataset_root(tmp_path)
    plain, cached = _ds(root, True), _ds(root, True)
    cache_images(cached, "ram")
    a = list(build_dataloader(plain, 2, shuffle=True, workers=0, seed=1))
    b = list(build_dataloader(cached, 2, shuffle=True, workers=2, seed=1))
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["img"], y["img"]) and torch.equal(x["targets"], y["targets"])


def test_ram_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    root = _dataset_root(tmp_path)
    ds = _ds(root, False)
    need = cache_nbytes(ds._info)
    memory = SimpleNamespace(available=need)  # needs 100% of what is free
    monkeypatch.setattr(imcache_mod.psutil, "virtual_memory", lambda: memory)
    with pytest.raises(DataError, match="cache=ram needs 28.6 KB .* use cache=disk"):
        cache_images(ds, "ram")
    assert ds.image_cache is None
    memory.available = int(need * 1.5)
    with caplog.at_level("WARNING", logger="detforge.data"):
        cache_images(ds, "ram")
    assert "over half the available RAM" in caplog.text


def test_disk_cache_reused_and_invalidated(tmp_path: Path, caplog) -> None:
    root = _dataset_root(tmp_path)
    plain, cached = _ds(root, False), _ds(root, False)
    with caplog.at_level("INFO", logger="detforge.data"):
        cache = cache_images(cached, "disk", cache_dir=tmp_path / "cache")
    assert "(3 to write: 28.6 KB)" in caplog.text
    assert cache is not None and cache.written == 3
    files = list(cache.files)
    assert all(f.parent == tmp_path / "cache" / "images" and f.is_file() for f in files)
    for i in range(3):
        assert _same(plain[i], cached[i])
    stamps = [f.stat().st_mtime_ns for f in files]

    again = cache_images(_ds(root, False), "disk", cache_dir=tmp_path / "cache")
    assert again.written == 0 and again.files == files
    assert [f.stat().st_mtime_ns for f in files] == stamps

    # a changed image (new content and mtime, same file size) gets a new file; others are reused
    img_b = root / "images" / "b.bmp"
    size_before = img_b.stat().st_size
    Image.fromarray(np.full((70, 50), 7, np.uint8)).save(img_b)
    st = img_b.stat()
    assert st.st_size == size_before
    os.utime(img_b, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds3 = _ds(root, False)
    third = cache_images(ds3, "disk", cache_dir=tmp_path / "cache")
    assert third.written == 1 and third.files[1] != files[1] and third.files[0] == files[0]
    assert (ds3.load_image(1, keep_gray=True) == 7).all()
    assert disk_cache_file(img_b, tmp_path / "cache") == third.files[1]

    # a damaged file is a miss: decoded again now, rewritten on the next build
    third.files[0].write_bytes(b"not a npy file")
    assert np.array_equal(ds3.load_image(0), plain.load_image(0))
    assert cache_images(_ds(root, False), "disk", cache_dir=tmp_path / "cache").written == 1


def test_bad_mode(tmp_path: Path) -> None:
    ds = _ds(_dataset_root(tmp_path), False)
    with pytest.raises(ValueError, match="'ram' or 'disk'"):
        cache_images(ds, "gpu")  # type: ignore[arg-type]
