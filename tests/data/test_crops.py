"""``detforge convert to=classify``: crops hold exactly their boxes' pixels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml
from PIL import Image

from detforge.data.crops import crop_rect, detection_to_classify


def test_crop_rect_pads_rounds_outward_and_clips():
    # 20x10 box at (10, 20): pad 0.1 -> 2 px left/right, 1 px top/bottom
    assert crop_rect(np.array([10.0, 20.0, 30.0, 30.0]), 100, 100, 0.1) == (8, 19, 32, 31)
    assert crop_rect(np.array([10.2, 20.7, 29.5, 30.1]), 100, 100, 0.0) == (10, 20, 30, 31)
    assert crop_rect(np.array([0.0, 0.0, 10.0, 50.0]), 40, 40, 0.5) == (0, 0, 15, 40)


@pytest.fixture
def det_dataset(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "det"
    pixels = {}
    for split, stem in (("train", "a"), ("val", "b")):
        img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        (root / "images" / split).mkdir(parents=True)
        Image.fromarray(img).save(root / "images" / split / f"{stem}.png")
        pixels[split] = img
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    # train: a 40x30 cat box centred at (40, 30), and a 4x4 dog box (under min_size 8)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.05 0.0666667\n")
    # val: a 16x12 dog box with its left edge at x=0
    (root / "labels/val/b.txt").write_text("1 0.1 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    return root, pixels


def test_crops_match_their_boxes(det_dataset, tmp_path):
    root, pixels = det_dataset
    out = tmp_path / "crops"
    report = detection_to_classify(root / "data.yaml", out, pad=0.1, min_size=8)
    assert dict(report.crops) == {("train", "cat"): 1, ("val", "dog"): 1}
    assert report.skipped_small["train"] == 1
    cat = np.asarray(Image.open(out / "train" / "cat" / "a_0.png"))
    # box (20, 15, 60, 45) grown by 4 px and 3 px: (16, 12, 64, 48)
    np.testing.assert_array_equal(cat, pixels["train"][12:48, 16:64])
    dog = np.asarray(Image.open(out / "val" / "dog" / "b_0.png"))
    # box (0, 24, 16, 36), pad 1.6 / 1.2 px, clipped at the left edge: (0, 22, 18, 38)
    np.testing.assert_array_equal(dog, pixels["val"][22:38, 0:18])
    assert (out / "train" / "dog").is_dir() and not any((out / "train" / "dog").iterdir())
    rows = list(csv.DictReader((out / "crops.csv").open()))
    assert [(r["crop"], r["left"], r["top"], r["right"], r["bottom"]) for r in rows] == [
        ("train/cat/a_0.png", "16", "12", "64", "48"),
        ("val/dog/b_0.png", "0", "22", "18", "38"),
    ]
    meta = yaml.safe_load((out / "data.yaml").read_text())
    assert meta == {"task": "classify", "path": ".", "train": "train", "val": "val",
                    "names": ["cat", "dog"]}  # fmt: skip


def test_bad_settings_are_named(det_dataset, tmp_path):
    root, _ = det_dataset
    with pytest.raises(ValueError, match="pad"):
        detection_to_classify(root / "data.yaml", tmp_path / "o", pad=-0.1)
    with pytest.raises(ValueError, match="min_size"):
        detection_to_classify(root / "data.yaml", tmp_path / "o", min_size=0)
