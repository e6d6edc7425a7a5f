"""Dataset statistics on a tiny dataset with known counts, and on the real HIT-UAV subset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detforge.data import YoloDataset, load_data_yaml
from detforge.data.stats import data_stats, format_stats, plot_stats

NAMES = ["cat", "dog", "bird", "fish"]


def _noise(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _labels(path: Path, w: int, h: int, boxes: list[tuple[int, int, int, int, int]]) -> None:
    """boxes: (cls, x1, y1, bw, bh) in pixels -> YOLO lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{c} {(x + bw / 2) / w} {(y + bh / 2) / h} {bw / w} {bh / h}"
             for c, x, y, bw, bh in boxes]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def stats_root(tmp_path: Path) -> Path:
    """train: a (3 boxes), b (a byte copy of a, 1 box), c (no labels); val: v (a copy of a),
    w. Boxes in px: small 10x12, 40x20, 10x10; medium 70x30, 24x50; large 150x80 (aspect ratios
    kept away from the bin edges, which float32 labels would blur)."""
    root = tmp_path / "ds"
    _noise(root / "images/train/a.png", 200, 100, seed=1)
    shutil.copy(root / "images/train/a.png", root / "images/train/b.png")
    _noise(root / "images/train/c.png", 64, 64, seed=2)
    (root / "images/val").mkdir(parents=True)
    shutil.copy(root / "images/train/a.png", root / "images/val/v.png")
    _noise(root / "images/val/w.png", 100, 100, seed=3)
    _labels(root / "labels/train/a.txt", 200, 100,
            [(0, 5, 5, 10, 12), (1, 20, 20, 70, 30), (0, 40, 10, 150, 80)])  # fmt: skip
    _labels(root / "labels/train/b.txt", 200, 100, [(2, 0, 0, 24, 50)])
    _labels(root / "labels/val/v.txt", 200, 100, [(1, 0, 0, 40, 20)])
    _labels(root / "labels/val/w.txt", 100, 100, [(0, 50, 50, 10, 10)])
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {NAMES}\n")
    return root


def test_known_counts(stats_root: Path, tmp_path: Path) -> None:
    st = data_stats(stats_root / "data.yaml", cache_dir=tmp_path / "cache")
    assert st["names"] == NAMES and list(st["splits"]) == ["train", "val"]
    tr, va = st["splits"]["train"], st["splits"]["val"]
    assert (tr["images"], tr["boxes"], tr["images_without_boxes"]) == (3, 4, 1)
    assert (tr["boxes_per_image_median"], tr["boxes_per_image_max"]) == (1.0, 3)
    assert tr["per_class"] == {
        "cat": {"boxes": 2, "images": 1}, "dog": {"boxes": 1, "images": 1},
        "bird": {"boxes": 1, "images": 1}, "fish": {"boxes": 0, "images": 0},
    }  # fmt: skip
    assert tr["box_sizes"] == {"small": 1, "medium": 2, "large": 1}
    # sqrt(area): 11.0 | 45.8, 34.6 | 109.5
    assert tr["size_hist"]["counts"] == [0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 0]
    # aspect w/h: 0.48 | 0.83 | 1.875 | 2.33
    assert tr["aspect_hist"]["counts"] == [0, 0, 1, 0, 1, 0, 1, 1, 0, 0]
    assert tr["resolutions"] == {"200x100": 2, "64x64": 1}
    root = stats_root / "images"
    a, b, v = str(root / "train/a.png"), str(root / "train/b.png"), str(root / "val/v.png")
    assert tr["duplicate_groups"] == [[a, b]] and tr["duplicate_images"] == 1
    assert va["duplicate_groups"] == [] and va["box_sizes"] == {"small": 2, "medium": 0, "large": 0}
    assert st["cross_split_duplicates"] == [[a, b, v]]

    text = format_stats(st)
    assert "train: 3 images, 4 boxes, 1 without boxes, 1 duplicate images" in text
    assert "  cat          2        1" in text
    assert "small 1 (25.0%), medium 2 (50.0%), large 1 (25.0%)" in text
    assert "box aspect w/h: 0-1/4: 0, 1/4-1/3: 0, 1/3-1/2: 1" in text
    assert f"identical: {a}, {b}" in text
    assert "identical images in more than one split: 1 groups" in text

    pngs = plot_stats(st, tmp_path / "plots")
    assert sorted(p.name for p in pngs) == sorted(
        f"{s}_{k}.png" for s in ("train", "val") for k in ("classes", "sizes", "aspect")
    )
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_single_dataset_without_hashing(stats_root: Path, tmp_path: Path) -> None:
    spec = load_data_yaml(stats_root / "data.yaml")
    ds = YoloDataset.from_spec(spec, "val", cache=False)
    st = data_stats(ds, find_duplicates=False)
    assert list(st["splits"]) == ["val"] and "cross_split_duplicates" not in st
    assert "duplicate_groups" not in st["splits"]["val"]
    assert st["splits"]["val"]["per_class"]["dog"] == {"boxes": 1, "images": 1}
    assert "val: 2 images, 2 boxes, 0 without boxes\n" in format_stats(st)


def _shared() -> Path:
    env = os.environ.get("DETFORGE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


HITUAV = _shared() / "data" / "hituav"


@pytest.mark.slow
@pytest.mark.skipif(not (HITUAV / "STATS.json").is_file(), reason=f"no HIT-UAV data at {HITUAV}")
def test_hituav_matches_stats_json(tmp_path: Path) -> None:
    ref = json.loads((HITUAV / "STATS.json").read_text())
    st = data_stats(HITUAV / "data.yaml", cache_dir=tmp_path)
    for split in ("train", "val"):
        s, r = st["splits"][split], ref["splits"][split]
        assert (s["images"], s["boxes"], s["images_without_boxes"]) == (
            r["images"], r["boxes"], r["images_without_boxes"],
        )  # fmt: skip
        assert {n: c["boxes"] for n, c in s["per_class"].items()} == r["class_hist"]
        assert s["resolutions"] == r["resolutions"]
        assert s["boxes_per_image_median"] == r["boxes_per_image_median"]
        assert s["boxes_per_image_max"] == r["boxes_per_image_max"]
        assert s["duplicate_groups"] == []
    total = sum(st["splits"][s]["boxes"] for s in ("train", "val"))
    small = sum(st["splits"][s]["box_sizes"]["small"] for s in ("train", "val"))
    assert total == ref["boxes"]["total"]
    assert round(small / total, 3) == ref["boxes"]["frac_area_lt_32x32_native"]
    assert len(st["cross_split_duplicates"]) == ref["train_val_leaks"] == 0
