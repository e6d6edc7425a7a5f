"""Label and image validation, reporting and strict mode (detforge.data.validate, dataset)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from detforge.data import DataError, YoloDataset
from detforge.data.validate import parse_labels


def _parse(tmp_path: Path, text: str, nc: int = 3) -> tuple[np.ndarray, list[str], Path]:
    p = tmp_path / "labels" / "x.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    labels, msgs = parse_labels(p, nc)
    return labels, msgs, p


def test_good_lines_and_blank_lines(tmp_path: Path) -> None:
    labels, msgs, _ = _parse(tmp_path, "0 0.5 0.5 0.2 0.4\n\n2.0 0.1 0.2 0.1 0.2\n")
    assert msgs == []
    assert labels.dtype == np.float32 and labels.shape == (2, 5)
    np.testing.assert_allclose(labels[1], [2, 0.1, 0.2, 0.1, 0.2], atol=1e-7)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.2", "got 4"),
        ("0 0.5 0.5 0.2 0.2 0.3", "got 6"),
        ("0 0.5 abc 0.2 0.2", "non-numeric value 'abc'"),
        ("0 0.5 nan 0.2 0.2", "non-finite"),
        ("3 0.5 0.5 0.2 0.2", "class id 3 out of range 0..2"),
        ("-1 0.5 0.5 0.2 0.2", "class id -1 out of range"),
        ("1.5 0.5 0.5 0.2 0.2", "not an integer"),
        ("0 1.2 0.5 0.2 0.2", "outside [0, 1]"),
        ("0 0.05 0.5 0.2 0.2", "outside [0, 1]"),
        ("0 0.5 0.5 0 0.2", "zero-area"),
        ("0 0.5 0.5 0.2 -0.1", "zero-area"),
        ("0 0.1 0.1 0.5 0.1 0.9 0.1", "zero-area"),
    ],
)
def test_bad_line_dropped_with_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    labels, msgs, path = _parse(tmp_path, f"1 0.5 0.5 0.1 0.1\n{line}\n0 0.3 0.3 0.1 0.1\n")
    assert len(labels) == 2 and labels[:, 0].tolist() == [1, 0]
    assert len(msgs) == 1 and msgs[0].startswith(f"{path}:2: ") and problem in msgs[0], msgs


def test_coordinates_within_tolerance_are_clipped(tmp_path: Path) -> None:
    # x1 = 0.5 - 0.5000008 / 2 < 0 by 4e-7: a %.6f rounding artefact, kept and clipped
    labels, msgs, _ = _parse(tmp_path, "0 0.25 0.5 0.5000008 0.2\n0 0.9995 0.5 0.0015 0.2\n")
    assert msgs == [] and len(labels) == 2
    x1 = labels[:, 1] - labels[:, 3] / 2
    x2 = labels[:, 1] + labels[:, 3] / 2
    assert x1.min() >= 0 and x2.max() <= 1 + 1e-7


def test_duplicates_dropped(tmp_path: Path) -> None:
    text = "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"
    labels, msgs, path = _parse(tmp_path, text)
    assert len(labels) == 2  # same box, other class: not a duplicate
    assert msgs == [f"{path}:3: duplicate of line 1", f"{path}:4: duplicate of line 1"]


def test_polygon_becomes_bounding_box(tmp_path: Path) -> None:
    labels, msgs, _ = _parse(tmp_path, "2 0.1 0.2 0.5 0.3 0.3 0.6\n")
    assert msgs == []
    np.testing.assert_allclose(labels[0], [2, 0.3, 0.4, 0.4, 0.4], atol=1e-6)


def test_missing_and_empty_label_files_mean_no_objects(tmp_path: Path) -> None:
    labels, msgs = parse_labels(tmp_path / "absent.txt", 2)
    assert labels.shape == (0, 5) and msgs == []
    labels, msgs, _ = _parse(tmp_path, "")
    assert labels.shape == (0, 5) and msgs == []


def test_dataset_reports_bad_lines_and_summary(
    yolo_root: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = yolo_root / "labels/train/a.txt"
    bad.write_text("0 0.5 0.5 0.2 0.2\n0 0.5\n5 0.5 0.5 0.1 0.1\n")
    with caplog.at_level(logging.INFO, logger="detforge.data"):
        ds = YoloDataset(yolo_root / "images/train", ["a", "b"], split="train", cache_dir=cache_dir)
    assert len(ds) == 3 and [len(x) for x in ds.labels] == [1, 1, 0]
    assert ds.warnings == [f"{bad}:2: " + ds.warnings[0].split(":2: ")[1], ds.warnings[1]]
    assert f"{bad}:3: class id 5 out of range" in ds.warnings[1]
    text = caplog.text
    assert f"{bad}:2:" in text and f"{bad}:3:" in text
    assert "train: 3 images, 2 boxes, 1 without boxes, 0 skipped, 2 label warnings" in text
    with pytest.raises(DataError, match=rf"train: {bad}:2: expected 5 columns"):
        YoloDataset(yolo_root / "images/train", ["a", "b"], split="train", strict=True, cache=False)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def test_truncated_jpeg_skipped_or_strict_error(
    yolo_root: Path, write_image, cache_dir: Path
) -> None:
    rng = np.random.default_rng(0)
    img = yolo_root / "images/train/a.jpg"
    from PIL import Image  # noisy content so the entropy-coded part is long

    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(img, quality=90)
    _truncate(img)
    ds = YoloDataset(yolo_root / "images/train", ["a", "b"], split="train", cache_dir=cache_dir)
    assert len(ds) == 2 and str(img) not in ds.image_files
    assert any(str(img) in w and "truncated" in w for w in ds.warnings)
    with pytest.raises(DataError, match="truncated JPEG"):
        YoloDataset(yolo_root / "images/train", ["a", "b"], strict=True, cache_dir=cache_dir)


def test_unreadable_image_skipped(yolo_root: Path, cache_dir: Path) -> None:
    (yolo_root / "images/train/b.png").write_bytes(b"not a png at all")
    ds = YoloDataset(yolo_root / "images/train", ["a", "b"], cache_dir=cache_dir)
    assert len(ds) == 2 and any("b.png: unreadable image" in w for w in ds.warnings)


def test_missing_image_listed_in_txt(yolo_root: Path, cache_dir: Path) -> None:
    lst = yolo_root / "train.txt"
    lst.write_text("images/train/a.jpg\nimages/train/ghost.jpg\n")
    ds = YoloDataset(lst, ["a", "b"], root=yolo_root, split="train", cache_dir=cache_dir)
    assert len(ds) == 1
    assert ds.warnings == [f"{lst}:2: {yolo_root / 'images/train/ghost.jpg'}: image not found"]
    with pytest.raises(DataError, match=rf"{lst}:2: .*ghost.jpg: image not found"):
        YoloDataset(lst, ["a", "b"], root=yolo_root, strict=True, cache_dir=cache_dir)


def test_empty_split_is_an_error(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "images/val").mkdir(parents=True)
    with pytest.raises(DataError, match=r"val: no images found in .*images/val"):
        YoloDataset(tmp_path / "images/val", ["a"], split="val", cache_dir=cache_dir)


def test_split_with_only_broken_images_is_an_error(tmp_path: Path, cache_dir: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("ghost.jpg\n")
    with pytest.raises(DataError, match="val: no usable images"):
        YoloDataset(lst, ["a"], split="val", cache_dir=cache_dir)


def test_many_images_validated_in_thread_pool(tmp_path: Path, write_image, cache_dir) -> None:
    for i in range(40):
        write_image(tmp_path / f"images/{i:03d}.png", 16, 16)
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / f"labels/{i:03d}.txt").write_text(f"{i % 2} 0.5 0.5 0.5 0.5\n")
    ds = YoloDataset(tmp_path / "images", ["a", "b"], cache_dir=cache_dir)
    assert len(ds) == 40
    assert [int(x[0, 0]) for x in ds.labels] == [i % 2 for i in range(40)]
    assert ds.shapes == [(16, 16)] * 40
