"""Fixtures for the data pipeline tests: tiny YOLO datasets written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ImageWriter = Callable[..., Path]


def _write_image(
    path: Path, w: int = 64, h: int = 48, mode: str = "RGB", value: int | tuple = 128, **save
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h), value).save(path, **save)
    return path


@pytest.fixture
def write_image() -> ImageWriter:
    """write_image(path, w=64, h=48, mode='RGB', value=128, **PIL save kwargs) -> path."""
    return _write_image


@pytest.fixture
def write_labels() -> Callable[[Path, str], Path]:
    """write_labels(path, text) -> path (parents created)."""

    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def yolo_root(tmp_path: Path) -> Path:
    """A 4-image, 2-class dataset: root/images/{train,val}, root/labels/..., root/data.yaml.

    train: a.jpg (2 boxes), b.png (1 box), c.jpg (no label file); val: v.jpg (1 box).
    """
    root = tmp_path / "ds"
    _write_image(root / "images/train/a.jpg", 80, 60)
    _write_image(root / "images/train/b.png", 60, 80)
    _write_image(root / "images/train/c.jpg", 64, 64)
    _write_image(root / "images/val/v.jpg", 64, 48)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/val").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n")
    (root / "labels/train/b.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (root / "labels/val/v.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    return root


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private label-cache folder (never the user's ~/.cache)."""
    return tmp_path / "cache"


def rect_image(
    w: int, h: int, box: tuple[int, int, int, int], fg: int = 255, bg: int = 0
) -> np.ndarray:
    """(h, w, 3) uint8 image of colour ``bg`` with a filled rectangle x1, y1, x2, y2 (exclusive)."""
    img = np.full((h, w, 3), bg, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = fg
    return img


@pytest.fixture
def make_rect_image() -> Callable[..., np.ndarray]:
    """rect_image(w, h, (x1, y1, x2, y2), fg=255, bg=0) -> (h, w, 3) uint8."""
    return rect_image
