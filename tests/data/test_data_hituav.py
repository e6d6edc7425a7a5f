"""Integration: the real HIT-UAV subset in the shared folder (skipped when it is absent)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from detforge.data import YoloDataset, load_data_yaml


def _shared() -> Path:
    env = os.environ.get("DETFORGE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


HITUAV = _shared() / "data" / "hituav"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (HITUAV / "data.yaml").is_file(),
        reason=f"HIT-UAV data not found at {HITUAV} (set DETFORGE_SHARED to the shared folder)",
    ),
]


def test_val_split_matches_stats(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stats = json.loads((HITUAV / "STATS.json").read_text())["splits"]["val"]
    spec = load_data_yaml(HITUAV / "data.yaml")
    assert spec.names == ["Person", "Car", "Bicycle", "OtherVehicle"]
    with caplog.at_level("INFO", logger="detforge.data"):
        ds = YoloDataset.from_spec(spec, "val", imgsz=640, cache_dir=tmp_path)
    assert len(ds) == stats["images"] == 145
    boxes = sum(len(x) for x in ds.labels)
    empty = sum(len(x) == 0 for x in ds.labels)
    assert (boxes, empty) == (stats["boxes"], stats["images_without_boxes"])
    hist = Counter(ds.names[int(c)] for x in ds.labels for c in x[:, 0])
    assert dict(hist) == stats["class_hist"]
    assert set(ds.shapes) == {(512, 640)} and ds.warnings == []
    summary = f"val: 145 images, {boxes} boxes, {empty} without boxes, 0 skipped, 0 label warnings"
    assert summary in caplog.text

    s = ds[0]
    assert s["img"].shape == (3, 640, 640) and s["pad"] == (0, 64) and s["ratio"] == 1.0
    back = (s["labels"][:, 1:].numpy() - [0, 64, 0, 64]) / s["ratio"]
    lab = ds.labels[0]
    ref = np.stack(
        [lab[:, 1] - lab[:, 3] / 2, lab[:, 2] - lab[:, 4] / 2,
         lab[:, 1] + lab[:, 3] / 2, lab[:, 2] + lab[:, 4] / 2], axis=1,
    ) * [640, 512, 640, 512]  # fmt: skip
    assert np.abs(back - ref).max() < 1e-3
    img = s["img"].numpy()
    assert (img[0] == img[1]).all() and (img[:, :64] == 114).all()  # gray, padded top band
    assert YoloDataset.from_spec(spec, "val", imgsz=640, cache_dir=tmp_path).cache_hit
