"""Deterministic, stratified train/val split of a flat folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detforge.data import DataError, YoloDataset, load_data_yaml
from detforge.data.split import _cover_val, _quotas, read_classes, split_dataset


def _flat(root: Path, classes_per_image: list[list[int]], labels_beside: bool = True) -> Path:
    """Images im00.png... with one small box per listed class; labels next to the images, or in
    a sibling labels/ folder (``labels_beside=False``, images then in ``images/``)."""
    img_dir = root if labels_beside else root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, classes in enumerate(classes_per_image):
        Image.new("L", (32, 24), i).save(img_dir / f"im{i:02d}.png")
        lab = img_dir if labels_beside else root / "labels"
        lab.mkdir(exist_ok=True)
        if classes:
            lines = [f"{c} {0.1 + 0.02 * k:.2f} 0.5 0.02 0.2\n" for k, c in enumerate(classes)]
            (lab / f"im{i:02d}.txt").write_text("".join(lines))
    return img_dir


# 30 images. Boxes: class 0: 22, class 1: 6 (in 6 images), class 2: 2, class 3: 1 (one image),
# class 4: 60, all in two class-1 images, so never an image's rarest class
CLASSES = (
    [[0]] * 16
    + [[0, 1], [1], [1] + [4] * 30, [1] + [4] * 30, [0, 1], [1]]
    + [[2, 0], [2]]
    + [[3, 0]]
    + [[]] * 4
    + [[0, 0]]
)


def _val_classes(res) -> set[int]:
    from detforge.data.datayaml import label_path_for

    return {c for p in res.val for c in read_classes(label_path_for(p))}


def test_deterministic_and_stratified(tmp_path: Path) -> None:
    src = _flat(tmp_path / "flat", CLASSES)
    a = split_dataset(src, tmp_path / "a", val_fraction=0.2, seed=0)
    b = split_dataset(src, tmp_path / "b", val_fraction=0.2, seed=0)
    c = split_dataset(src, tmp_path / "c", val_fraction=0.2, seed=1)
    assert a.val == b.val and a.train == b.train
    assert (tmp_path / "a/val.txt").read_text() == (tmp_path / "b/val.txt").read_text()
    assert c.val != a.val  # another seed, another split
    assert sorted(a.train + a.val) == sorted(src.glob("*.png"))
    assert not set(a.train) & set(a.val)
    assert 5 <= len(a.val) <= 8  # about 20% of 30
    for res in (a, c):
        # every class with two or more images is in val, and still in train
        assert _val_classes(res) >= {0, 1, 2, 4}
        train_classes = {c for p in res.train for c in read_classes(p.with_suffix(".txt"))}
        assert train_classes == {0, 1, 2, 3, 4}  # class 3 (one image) stays in train
    assert a.names == ["class0", "class1", "class2", "class3", "class4"]


def test_lists_layout_loads_as_a_dataset(tmp_path: Path) -> None:
    src = _flat(tmp_path / "ds", CLASSES, labels_beside=False)
    (tmp_path / "ds/classes.txt").write_text("car\nbus\nvan\ntram\nbike\n")
    res = split_dataset(src, tmp_path / "out", val_fraction=0.25, seed=3)
    spec = load_data_yaml(res.data_yaml)
    assert spec.names == ["car", "bus", "van", "tram", "bike"]
    val = YoloDataset.from_spec(spec, "val", cache=False)
    assert [Path(p) for p in val.image_files] == res.val and val.warnings == []
    assert sum(len(x) for x in val.labels) > 0
    assert not (tmp_path / "out/train.txt").read_text().startswith("/")  # relative paths


def test_names_come_from_the_source_data_yaml(tmp_path: Path) -> None:
    # the layout convert writes: ds/data.yaml, ds/images/train, ds/labels/train
    src = _flat(tmp_path / "ds", CLASSES, labels_beside=False)
    (tmp_path / "ds/data.yaml").write_text(
        "train: images\nval: images\nnames: {0: car, 1: bus, 2: van, 3: tram, 4: bike}\n"
    )
    (tmp_path / "ds/classes.txt").write_text("x\ny\nz\nu\nv\n")  # the data.yaml comes first
    res = split_dataset(src, tmp_path / "out")
    assert res.names == ["car", "bus", "van", "tram", "bike"]
    assert res.names_from == str(tmp_path / "ds/data.yaml")
    assert load_data_yaml(res.data_yaml).names == res.names
    res = split_dataset(src, tmp_path / "out2", names=list("abcde"))  # names= wins
    assert res.names == list("abcde") and res.names_from == "names="


def test_too_few_source_names_is_an_error(tmp_path: Path) -> None:
    src = _flat(tmp_path / "ds", CLASSES, labels_beside=False)
    (tmp_path / "ds/data.yaml").write_text("train: images\nval: images\nnames: [car, bus]\n")
    with pytest.raises(DataError, match=r"labels use class 4 but only 2 names \(.*data.yaml\)"):
        split_dataset(src, tmp_path / "out")


def test_copy_layout_and_unstratified(tmp_path: Path) -> None:
    src = _flat(tmp_path / "flat", CLASSES)
    res = split_dataset(src, tmp_path / "out", seed=0, stratify=False, layout="copy",
                        names=["a", "b", "c", "d", "e"])  # fmt: skip
    assert len(res.val) == 6  # round(0.2 * 30)
    copied = sorted(p.name for p in (tmp_path / "out/images/val").iterdir())
    assert copied == sorted(p.name for p in res.val)
    for p in res.val:
        lab = tmp_path / "out/labels/val" / (p.stem + ".txt")
        assert lab.is_file() == p.with_suffix(".txt").is_file()
    spec = load_data_yaml(res.data_yaml)
    assert len(YoloDataset.from_spec(spec, "train", cache=False)) == 24


def test_cover_val_moves_a_holder_of_a_missing_class() -> None:
    classes = [[0, 1], [0, 1], [0], [0], [2]]
    is_val = np.array([False, False, True, True, False])
    _cover_val(classes, is_val, 3)
    assert is_val.tolist() == [True, False, True, True, False]  # class 2: one image, stays
    is_val = np.array([False, True, False, False])
    _cover_val([[0, 1], [0], [1], [0]], is_val, 2)
    assert is_val.tolist() == [True, True, False, False]  # both classes stay in train


def test_quotas() -> None:
    assert _quotas([16, 6, 2, 1, 5], 0.2) == [3, 1, 1, 0, 1]
    assert sum(_quotas([10, 10, 10], 0.5)) == 15
    assert _quotas([2, 2], 0.9) == [1, 1]  # always one image left for train


def test_errors(tmp_path: Path) -> None:
    src = _flat(tmp_path / "flat", [[0], [1]])
    with pytest.raises(DataError, match="labels use class 1 but only 1 names"):
        split_dataset(src, tmp_path / "out", names=["a"])
    (src / "im01.txt").write_text("0 0.5 0.5 0.1 0.1\nx 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match=r"im01.txt:2: class id 'x' is not an integer"):
        split_dataset(src, tmp_path / "out")
    with pytest.raises(ValueError, match="val_fraction"):
        split_dataset(src, tmp_path / "out", val_fraction=1.0)
    with pytest.raises(DataError, match="at least 2 images"):
        split_dataset(_flat(tmp_path / "one", [[0]]), tmp_path / "out")
