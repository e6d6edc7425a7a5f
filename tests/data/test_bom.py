"""Text files a user gives may start with a UTF-8 byte-order mark (Windows editors write one):
the mark is never part of the first line, label, list entry, class name or key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from detforge.data import YoloDataset, list_images, load_data_yaml
from detforge.data.convert import coco_to_yolo, voc_to_yolo
from detforge.data.split import read_classes, split_dataset
from detforge.data.validate import parse_labels
from detforge.eval.cocojson import load_json

BOM = "\ufeff"


def _bom(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((BOM + text).encode("utf-8"))
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    return path


def test_label_file_with_bom_keeps_its_first_box(tmp_path: Path) -> None:
    p = _bom(tmp_path / "labels/x.txt", "1 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n")
    labels, msgs = parse_labels(p, 2)
    assert msgs == []
    assert labels[:, 0].tolist() == [1, 0]


def test_dataset_with_bom_labels_yaml_and_list(yolo_root: Path, cache_dir: Path) -> None:
    _bom(yolo_root / "labels/train/a.txt", "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n")
    _bom(yolo_root / "list.txt", "images/train/a.jpg\nimages/train/b.png\n")
    _bom(yolo_root / "data.yaml", "train: list.txt\nval: images/val\nnames: [cat, dog]\n")
    spec = load_data_yaml(yolo_root / "data.yaml")
    assert spec.names == ["cat", "dog"]
    entries = list_images(spec.train, root=spec.root)
    assert [e.path.name for e in entries] == ["a.jpg", "b.png"]
    ds = YoloDataset.from_spec(spec, "train", cache_dir=cache_dir)
    assert ds.warnings == []
    assert [len(x) for x in ds.labels] == [2, 1]


def test_split_reads_bom_labels_and_classes_txt(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(4):
        Image.new("L", (16, 16), i).save(src / f"im{i}.png")
        _bom(src / f"im{i}.txt", f"{i % 2} 0.5 0.5 0.2 0.2\n")
    _bom(src / "classes.txt", "car\nbus\n")
    assert read_classes(src / "im1.txt") == [1]
    res = split_dataset(src, tmp_path / "out", val_fraction=0.5)
    assert res.names == ["car", "bus"]


def _coco_doc() -> dict:
    return {
        "images": [{"id": 1, "file_name": "x.png", "width": 40, "height": 20}],
        "categories": [{"id": 3, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 2, 8, 4],
                         "area": 32, "iscrowd": 0}],
    }  # fmt: skip


def test_coco_json_with_bom(tmp_path: Path) -> None:
    Image.new("RGB", (40, 20)).save(tmp_path / "x.png")
    p = _bom(tmp_path / "inst.json", json.dumps(_coco_doc()))
    assert load_json(p) == _coco_doc()
    rep = coco_to_yolo(p, tmp_path, tmp_path / "out")
    assert (rep.images, rep.boxes) == (1, 1)
    labels, _ = parse_labels(tmp_path / "out/labels/train/x.txt", 1)
    np.testing.assert_allclose(labels, [[0, 0.2, 0.2, 0.2, 0.2]], atol=1e-7)


def test_voc_xml_with_bom(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages").mkdir()
    Image.new("RGB", (50, 40)).save(tmp_path / "JPEGImages/a.jpg")
    _bom(
        tmp_path / "Annotations/a.xml",
        "<annotation><filename>a.jpg</filename><size><width>50</width><height>40</height>"
        "</size><object><name>cat</name><bndbox><xmin>5</xmin><ymin>4</ymin><xmax>15</xmax>"
        "<ymax>24</ymax></bndbox></object></annotation>",
    )
    rep = voc_to_yolo(tmp_path / "Annotations", tmp_path / "JPEGImages", tmp_path / "out")
    assert (rep.images, rep.boxes) == (1, 1)
    assert load_data_yaml(rep.data_yaml).names == ["cat"]
