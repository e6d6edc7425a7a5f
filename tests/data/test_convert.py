"""Format converters: YOLO <-> COCO round trip, COCO details and errors, VOC exact values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detforge.data import DataError, YoloDataset, load_data_yaml
from detforge.data.convert import coco_to_yolo, voc_to_yolo, yolo_to_coco
from detforge.data.split import split_dataset
from detforge.data.validate import parse_labels
from detforge.eval.validator import ground_truth_xyxy


def _img(path: Path, w: int, h: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return path


@pytest.fixture
def yolo_ds(tmp_path: Path) -> Path:
    """val: 4 images (one without a label file, one with an empty one), 3 classes."""
    root = tmp_path / "yolo"
    for name, (w, h) in {"a": (640, 512), "b": (300, 200), "c": (64, 64), "d": (99, 77)}.items():
        _img(root / "images/val" / f"{name}.jpg", w, h)
    labels = {
        "a": "0 0.5 0.5 0.2 0.3\n2 0.123457 0.654321 0.0312 0.0417\n1 0.05 0.95 0.1 0.1\n",
        "b": "1 0.333333 0.25 0.666666 0.5\n1 0.9 0.1 0.2 0.2\n",
        "c": "",
    }
    (root / "labels/val").mkdir(parents=True)
    for name, text in labels.items():
        (root / "labels/val" / f"{name}.txt").write_text(text)
    (root / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [a, b, 'c d']\n")
    return root


def test_yolo_coco_yolo_round_trip(yolo_ds: Path, tmp_path: Path) -> None:
    gt = yolo_to_coco(yolo_ds / "data.yaml", "val", tmp_path / "gt.json", cache_dir=tmp_path)
    assert json.loads((tmp_path / "gt.json").read_text()) == gt
    assert [im["file_name"] for im in gt["images"]] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert [im["id"] for im in gt["images"]] == [0, 1, 2, 3]
    assert gt["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"},
                                {"id": 3, "name": "c d"}]  # fmt: skip
    # the same ground truth as validation and the run export use (ids, category_id = cls + 1)
    ds = YoloDataset.from_spec(load_data_yaml(yolo_ds / "data.yaml"), "val", cache=False)
    anns = iter(gt["annotations"])
    for i in range(len(ds)):
        boxes, cls = ground_truth_xyxy(ds.labels[i], ds.shapes[i])
        for b, c in zip(boxes, cls, strict=True):
            a = next(anns)
            assert (a["image_id"], a["category_id"]) == (i, c + 1)
            assert a["bbox"] == [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    rep = coco_to_yolo(tmp_path / "gt.json", yolo_ds / "images/val", tmp_path / "back", "val")
    assert (rep.images, rep.boxes, rep.images_without_boxes) == (4, 5, 2)
    assert rep.clipped == rep.crowd_skipped == rep.degenerate_skipped == 0
    for name in "abcd":
        orig, _ = parse_labels(yolo_ds / "labels/val" / f"{name}.txt", 3)
        back_file = tmp_path / "back/labels/val" / f"{name}.txt"
        back, msgs = parse_labels(back_file, 3)
        assert back_file.is_file() and msgs == []
        np.testing.assert_allclose(back, orig, atol=1e-6, rtol=0)
        assert (tmp_path / "back/images/val" / f"{name}.jpg").read_bytes() == (
            yolo_ds / "images/val" / f"{name}.jpg"
        ).read_bytes()
    spec = load_data_yaml(tmp_path / "back/data.yaml")
    assert spec.names == ["a", "b", "c d"] and spec.val == spec.train  # only one split converted


def _coco(tmp_path: Path, **over) -> Path:
    _img(tmp_path / "imgs/x.png", 100, 50)
    _img(tmp_path / "imgs/sub/y.png", 40, 40)
    doc = {
        "images": [{"id": 7, "file_name": "x.png", "width": 100, "height": 50},
                   {"id": "y", "file_name": "sub/y.png"}],  # size read from the file
        "categories": [{"id": 9, "name": "nine"}, {"id": 2, "name": "two"},
                       {"id": 5, "name": "five"}],
        "annotations": [
            {"image_id": 7, "category_id": 2, "bbox": [10, 10, 20, 10]},
            {"image_id": 7, "category_id": 9, "bbox": [90, 40, 20, 20]},  # clipped to 10x10
            {"image_id": 7, "category_id": 5, "bbox": [0, 0, 50, 50], "iscrowd": 1},
            {"image_id": 7, "category_id": 5, "bbox": [120, 10, 5, 5]},  # outside: dropped
        ],
    }  # fmt: skip
    doc.update(over)
    p = tmp_path / "inst.json"
    p.write_text(json.dumps(doc))
    return p


def test_coco_to_yolo_details(tmp_path: Path) -> None:
    rep = coco_to_yolo(_coco(tmp_path), tmp_path / "imgs", tmp_path / "out", "train", "hardlink")
    assert (rep.images, rep.boxes, rep.images_without_boxes) == (2, 2, 1)
    assert (rep.crowd_skipped, rep.clipped, rep.degenerate_skipped) == (1, 2, 1)
    assert "1 crowd boxes skipped" in rep.summary()
    # sorted ids 2, 5, 9 -> classes 0, 1, 2
    x_txt = (tmp_path / "out/labels/train/x.txt").read_text()
    assert x_txt == "0 0.2 0.3 0.2 0.2\n2 0.95 0.9 0.1 0.2\n"
    assert (tmp_path / "out/labels/train/sub/y.txt").read_text() == ""
    assert (tmp_path / "out/images/train/sub/y.png").is_file()
    spec = load_data_yaml(rep.data_yaml)
    assert spec.names == ["two", "five", "nine"]
    ds = YoloDataset.from_spec(spec, "train", cache=False)
    assert len(ds) == 2 and ds.warnings == []
    with pytest.raises(DataError, match="lists classes"):  # another class list, same folder
        other = _coco(tmp_path, categories=[{"id": 1, "name": "z"}], annotations=[])
        coco_to_yolo(other, tmp_path / "imgs", tmp_path / "out", "val")


def test_one_split_conversion_says_where_the_images_went(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rep = coco_to_yolo(_coco(tmp_path), tmp_path / "imgs", out)  # split defaults to train
    note = (
        f"note: all 2 images went to the train split (split=train|val|test chooses it); "
        f"{out / 'data.yaml'} has no val split and uses train for it. Convert another split "
        f"into {out}, or hold out part of these images: "
        f"detforge split src={out / 'images/train'} out=<new folder> val=0.2"
    )
    assert rep.notes == [note]
    assert rep.summary().splitlines()[0].startswith("train: 2 images, 2 boxes")
    assert rep.summary().splitlines()[1:] == [note]
    held_out = split_dataset(out / "images/train", tmp_path / "held_out", 0.5, stratify=False)
    assert held_out.names == ["two", "five", "nine"] and len(held_out.val) == 1
    rep = coco_to_yolo(_coco(tmp_path), tmp_path / "imgs", out, "val")  # now both splits
    assert rep.notes == [] and "note" not in rep.summary()


def test_coco_size_mismatch_is_reported(tmp_path: Path) -> None:
    images = [{"id": 7, "file_name": "x.png", "width": 120, "height": 50}]
    rep = coco_to_yolo(_coco(tmp_path, images=images, annotations=[]), tmp_path / "imgs",
                       tmp_path / "out")  # fmt: skip
    assert rep.messages == [
        f"{tmp_path / 'inst.json'}: images[0]: json says 120x50, the image is 100x50"
    ]
    assert "1 warnings (see messages)" in rep.summary()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"annotations": [{"image_id": 3, "category_id": 2, "bbox": [0, 0, 1, 1]}]},
         r"inst.json: annotations\[0\]: image_id 3 is not in 'images'"),
        ({"annotations": [{"image_id": 7, "category_id": 4, "bbox": [0, 0, 1, 1]}]},
         r"annotations\[0\]: category_id 4 is not in 'categories'"),
        ({"annotations": [{"image_id": 7, "category_id": 2, "bbox": [0, 0, 1]}]},
         r"annotations\[0\]: bbox must be 4 finite numbers"),
        ({"annotations": [{"image_id": 7, "bbox": [0, 0, 1, 1]}]},
         r"annotations\[0\] has no 'category_id'"),
        ({"images": [{"id": 1, "file_name": "missing.png"}]},
         r"images\[0\]: image 'missing.png' not found"),
        ({"images": [{"id": 1, "file_name": "x.txt"}]}, r"images\[0\]: 'x.txt' is not an image"),
        ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]},
         r"categories\[1\]: category id 1 is listed twice"),
        ({"annotations": {}}, r"'annotations' must be a list"),
    ],
)  # fmt: skip
def test_coco_errors_name_the_entry(tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        coco_to_yolo(_coco(tmp_path, **over), tmp_path / "imgs", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written from bad input


def test_coco_bad_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataError, match=r"bad.json is not valid json.*line 2"):
        coco_to_yolo(bad, tmp_path, tmp_path / "out")


VOC = """<annotation>
  <folder>VOC2007</folder><filename>000005.jpg</filename>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>chair</name><difficult>0</difficult>
    <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>520</xmax><ymax>375</ymax></bndbox></object>
</annotation>
"""


def _voc(tmp_path: Path, text: str = VOC, name: str = "000005") -> Path:
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    _img(tmp_path / "JPEGImages" / f"{name}.jpg", 500, 375)
    (tmp_path / "Annotations" / f"{name}.xml").write_text(text)
    return tmp_path / "Annotations"


def test_voc_exact_values(tmp_path: Path) -> None:
    rep = voc_to_yolo(_voc(tmp_path), tmp_path / "JPEGImages", tmp_path / "out")
    assert (rep.images, rep.boxes, rep.clipped) == (1, 2, 1)
    # chair: pixels 263..324 x 211..339 (1-based, inclusive) = [262, 324] x [210, 339]
    # person: [0, 520 -> 500] x [0, 375]
    text = (tmp_path / "out/labels/train/000005.txt").read_text()
    assert text == "0 0.586 0.732 0.124 0.344\n1 0.5 0.5 1 1\n"
    assert load_data_yaml(rep.data_yaml).names == ["chair", "person"]

    rep = voc_to_yolo(_voc(tmp_path), tmp_path / "JPEGImages", tmp_path / "out0",
                      names=["person", "chair", "table"], keep_difficult=False,
                      one_based=False)  # fmt: skip
    assert (rep.boxes, rep.difficult_skipped) == (1, 1)
    vals = [float(v) for v in (tmp_path / "out0/labels/train/000005.txt").read_text().split()]
    np.testing.assert_allclose(vals, [1, 293.5 / 500, 275 / 375, 61 / 500, 128 / 375], atol=1e-8)


def test_voc_size_from_image_and_renamed_file(tmp_path: Path) -> None:
    text = VOC.replace("<filename>000005.jpg</filename>", "<filename>old_name.jpg</filename>")
    text = text.replace("<width>500</width>", "<width>0</width>")
    voc_to_yolo(_voc(tmp_path, text), tmp_path / "JPEGImages", tmp_path / "out")
    assert (tmp_path / "out/labels/train/000005.txt").read_text().startswith("0 0.586 0.732")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotation><object>", r"000005.xml: not valid XML: .*line 1"),
        ("<doc/>", r"000005.xml: root element is <doc>"),
        (VOC.replace("<xmax>324</xmax>", ""),
         r"000005.xml: object 0 \(chair\): missing <bndbox/xmax>"),
        (VOC.replace("<ymin>211</ymin>", "<ymin>2a</ymin>"),
         r"object 0 \(chair\): <bndbox/ymin> is not a number"),
        (VOC.replace("<name>person</name>", "<name>sofa</name>"),
         r"object 1: class 'sofa' is not in names"),
    ],
)  # fmt: skip
def test_voc_errors_name_file_and_object(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        voc_to_yolo(_voc(tmp_path, text), tmp_path / "JPEGImages", tmp_path / "out",
                    names=["chair", "person"])  # fmt: skip
