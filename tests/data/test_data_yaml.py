"""data.yaml parsing and split listing (detforge.data.datayaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detforge.data import DataConfigError, DataError, label_path_for, list_images, load_data_yaml


def _yaml(root: Path, text: str) -> Path:
    p = root / "data.yaml"
    p.write_text(text)
    return p


def test_defaults_root_to_yaml_folder(yolo_root: Path) -> None:
    spec = load_data_yaml(yolo_root / "data.yaml")
    assert spec.root == yolo_root
    assert spec.train == [yolo_root / "images/train"]
    assert spec.test == []
    assert spec.names == ["cat", "dog"] and spec.nc == 2
    assert spec.yaml_path == yolo_root / "data.yaml"


def test_missing_yaml_names_file(tmp_path: Path) -> None:
    with pytest.raises(DataConfigError, match="nope.yaml.*not found"):
        load_data_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("train: images/train\nnames: [a, b]\n", "val", "missing"),
        ("train: images/train\nval: images/val\n", "names", "missing"),
        ("train: images/train\nval: images/val\nnames: 5\n", "names", "list or a dict"),
        ("train: images/train\nval: images/val\nnames: [a, [b]]\n", "names", "class 1"),
        ("train: images/train\nval: images/nowhere\nnames: [a]\n", "val", "does not exist"),
        ("train: 3\nval: images/val\nnames: [a]\n", "train", "expected a path"),
        ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", "nc", "nc=3"),
        ("train: images/train\nval: images/val\nnames: [a]\nnc: two\n", "nc", "integer"),
        ("path: elsewhere\ntrain: images/train\nval: images/val\nnames: [a]\n", "path", "folder"),
        ("train: images/train\nval: images/val\nnames: {0: a, 2: c}\n", "names", "0..1"),
    ],
)
def test_errors_name_file_and_key(yolo_root: Path, text: str, key: str, problem: str) -> None:
    path = _yaml(yolo_root, text)
    with pytest.raises(DataConfigError) as err:
        load_data_yaml(path)
    msg = str(err.value)
    assert str(path) in msg and f"'{key}'" in msg and problem in msg
    assert isinstance(err.value, ValueError)


def test_names_as_dict(yolo_root: Path) -> None:
    path = _yaml(yolo_root, "train: images/train\nval: images/val\nnames: {1: dog, 0: cat}\n")
    assert load_data_yaml(path).names == ["cat", "dog"]


def test_relative_path_key_is_relative_to_yaml(yolo_root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "configs"
    cfg.mkdir()
    path = cfg / "d.yaml"
    path.write_text("path: ../ds\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    spec = load_data_yaml(path)
    assert spec.root == yolo_root and spec.val == [yolo_root / "images/val"]


def test_split_as_list_of_folder_and_txt(yolo_root: Path, write_image) -> None:
    write_image(yolo_root / "images/extra/deep/x.JPEG")
    write_image(yolo_root / "images/extra/deep/notes.gif")
    (yolo_root / "images/extra/readme.md").write_text("not an image")
    # relative to the root (YOLO convention), relative to the txt folder, absolute, a duplicate
    lists = yolo_root / "lists"
    lists.mkdir()
    write_image(lists / "local.png")
    (lists / "more.txt").write_text(
        "# comment\n./images/val/v.jpg\n\nlocal.png\n"
        f"{yolo_root / 'images/train/a.jpg'}\nimages/train/a.jpg\n"
    )
    path = _yaml(
        yolo_root,
        "train: [images/extra, lists/more.txt]\nval: images/val\nnames: [a, b]\n",
    )
    spec = load_data_yaml(path)
    entries = list_images(spec.train, root=spec.root, split="train")
    got = [e.path.relative_to(yolo_root).as_posix() for e in entries]
    assert got == sorted(
        ["images/extra/deep/x.JPEG", "images/train/a.jpg", "images/val/v.jpg", "lists/local.png"]
    )
    where = {e.path.name: e.where for e in entries}
    assert where["v.jpg"] == f"{lists / 'more.txt'}:2" and where["x.JPEG"] == ""


def test_listing_missing_source_names_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"val: source not found: .*gone"):
        list_images([tmp_path / "gone"], split="val")


def test_label_path_replaces_last_images_component() -> None:
    assert label_path_for("/d/images/x/images/train/a.b.jpg") == Path(
        "/d/images/x/labels/train/a.b.txt"
    )
    assert label_path_for("/d/pics/a.png") == Path("/d/pics/a.txt")
    assert label_path_for("/d/images/images.jpg") == Path("/d/labels/images.txt")
