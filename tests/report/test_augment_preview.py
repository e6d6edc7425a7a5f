"""augment_preview: a PNG grid of augmented samples with boxes, deterministic by seed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from detforge.data import YoloDataset
from detforge.data.augment.core import AugmentParams
from detforge.report.preview import augment_preview, draw_sample


@pytest.fixture
def dataset(tmp_path: Path) -> YoloDataset:
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i in range(5):
        img = rng.integers(0, 120, (96, 128, 3), dtype=np.uint8)
        img[20:70, 30:90] = 230
        Image.fromarray(img).save(tmp_path / f"images/{i}.png")
        (tmp_path / f"labels/{i}.txt").write_text(f"{i % 2} 0.46875 0.46875 0.46875 0.520833\n")
    aug = AugmentParams(mosaic=1.0, mixup=0.3, degrees=5.0)
    return YoloDataset(tmp_path / "images", ["cat", "dog"], imgsz=64, augment=True, aug=aug,
                       cache_dir=tmp_path / "cache")  # fmt: skip


def test_preview_grid_is_written_and_deterministic(dataset: YoloDataset, tmp_path: Path) -> None:
    a = augment_preview(dataset, n=7, out_png=tmp_path / "out/a.png", seed=1)
    b = augment_preview(dataset, n=7, out_png=tmp_path / "out/b.png", seed=1)
    c = augment_preview(dataset, n=7, out_png=tmp_path / "out/c.png", seed=2)
    grid = cv2.imread(str(a))
    # 7 samples: 3 columns x 3 rows of 64 px cells with 4 px gaps
    assert grid.shape == (3 * 68 + 4, 3 * 68 + 4, 3)
    np.testing.assert_array_equal(grid, cv2.imread(str(b)))
    assert not np.array_equal(grid, cv2.imread(str(c)))
    # an epoch after close_mosaic shows other (non-mosaic) samples
    dataset.mosaic_until_epoch = 1
    d = augment_preview(dataset, n=7, out_png=tmp_path / "out/d.png", seed=1, epoch=1)
    assert not np.array_equal(grid, cv2.imread(str(d)))


def test_draw_sample_draws_on_the_box_outline() -> None:
    img = np.zeros((50, 80), np.uint8)
    out = draw_sample(img, np.array([[1, 10, 20, 60, 45]], np.float32), ["a", "b"], scale=2.0)
    assert out.shape == (100, 160, 3)
    # box (20, 40)-(120, 90) after scaling: sides on columns 20 and 119, rows 40 and 89
    assert out[45:90, 20].any(axis=1).all() and out[45:90, 119].any(axis=1).all()
    assert out[89, 30:110].any(axis=1).all()
    assert not out[70, 60].any()  # the inside stays untouched
    with pytest.raises(ValueError, match="n must be"):
        augment_preview(None, n=0)  # type: ignore[arg-type]
