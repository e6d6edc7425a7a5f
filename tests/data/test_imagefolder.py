"""Classification data in the ImageFolder layout: read, and every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from detforge.data.errors import DataConfigError, DataError
from detforge.data.imagefolder import is_classify_data, load_classify_data


@pytest.fixture
def folder(tmp_path, write_image) -> Path:
    root = tmp_path / "cls"
    for split, per_class in (("train", 3), ("val", 2)):
        for name in ("cat", "dog"):
            for i in range(per_class):
                write_image(root / split / name / f"{name}{i}.png", 16, 12)
    return root


def test_folder_layout_gives_files_labels_and_sorted_class_names(folder):
    data = load_classify_data(folder)
    assert data.names == ["cat", "dog"] and set(data.splits) == {"train", "val"}
    train = data.splits["train"]
    assert len(train) == 6 and train.counts(2) == [3, 3]
    assert all(
        data.names[c] == f.parent.name for f, c in zip(train.files, train.labels, strict=True)
    )
    assert data.warnings == [] and is_classify_data(folder)


def test_yaml_names_set_the_class_order(folder):
    (folder / "data.yaml").write_text("task: classify\ntrain: train\nval: val\nnames: [dog, cat]\n")
    data = load_classify_data(folder / "data.yaml")
    assert data.names == ["dog", "cat"]
    assert data.splits["val"].counts(2) == [2, 2]
    train = data.splits["train"]
    assert [(f.name, c) for f, c in zip(train.files, train.labels, strict=True)][2:4] == [
        ("dog2.png", 0), ("cat0.png", 1)]  # fmt: skip
    (folder / "det.yaml").write_text("train: train\nval: val\nnames: [dog, cat]\n")
    assert is_classify_data(folder / "data.yaml") and not is_classify_data(folder / "det.yaml")


def test_a_folder_holding_a_classify_data_yaml_reads_it(folder):
    # `detforge convert to=classify` writes one with the detection dataset's class order;
    # `data=<folder>` keeps that order (class 0 stays class 0), not the folders' sorted order
    (folder / "data.yaml").write_text("task: classify\ntrain: train\nval: val\nnames: [dog, cat]\n")
    assert load_classify_data(folder).names == ["dog", "cat"]
    (folder / "data.yaml").write_text("train: train\nval: val\nnames: [dog, cat]\n")  # detection
    assert load_classify_data(folder).names == ["cat", "dog"]


def test_yaml_names_that_differ_from_the_folders_are_an_error(folder):
    (folder / "data.yaml").write_text("task: classify\ntrain: train\nval: val\nnames: [cat, cow]\n")
    with pytest.raises(DataConfigError, match=r"names \['cat', 'cow'\] differ .* \['cat', 'dog'\]"):
        load_classify_data(folder / "data.yaml")


def test_val_class_unknown_to_train_is_an_error(folder, write_image):
    write_image(folder / "val" / "cow" / "c.png")
    with pytest.raises(DataError, match=r"val: class folders \['cow'\] are not in the train"):
        load_classify_data(folder)


def test_empty_train_class_is_an_error_empty_val_class_a_warning(folder):
    for f in (folder / "val" / "dog").iterdir():
        f.unlink()
    data = load_classify_data(folder)
    assert (
        len(data.warnings) == 1 and "class 'dog' has no images in the val split" in data.warnings[0]
    )
    for f in (folder / "train" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"train/dog: class 'dog' has no images in the train"):
        load_classify_data(folder)


def test_unreadable_image_is_named_or_skipped_when_allowed(folder):
    bad = folder / "train" / "cat" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_classify_data(folder)
    data = load_classify_data(folder, skip_corrupt=True)
    assert len(data.splits["train"]) == 6
    assert any("broken.png" in w and w.startswith("skipped") for w in data.warnings)


def test_missing_val_split_is_named(tmp_path, write_image):
    write_image(tmp_path / "only" / "train" / "a" / "x.png")
    with pytest.raises(DataConfigError, match="no 'val' split folder"):
        load_classify_data(tmp_path / "only")
