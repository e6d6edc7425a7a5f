"""``detforge convert``: COCO json or Pascal VOC xml to YOLO, YOLO to COCO json, or YOLO to an
image-classification dataset of object crops."""

from __future__ import annotations

from collections.abc import Sequence

from ..config.fields import ConfigError
from .spec import REQUIRED, Arg, Command, parse

__all__ = ["COMMAND", "run"]

COMMAND = Command(
    "convert",
    "Convert a dataset: from=coco json=.. images=.. out=.. | from=voc xml=.. images=.. out=.. | "
    "to=coco data=data.yaml split=val out=gt.json | to=classify data=data.yaml out=DIR "
    "[pad=0.1] [min_size=8] (object crops, one folder per class)",
    "detforge convert from=coco|voc ... out=DIR  or  detforge convert to=coco|classify data=... "
    "out=...",
    (
        Arg("from", str, None, "source format: coco or voc"),
        Arg("to", str, None, "target format: coco or classify (from a YOLO data.yaml)"),
        Arg("json", str, None, "COCO instances json (from=coco)"),
        Arg("xml", str, None, "folder of VOC xml files (from=voc)"),
        Arg("images", str, None, "image folder (from=coco, from=voc)"),
        Arg("out", str, REQUIRED, "output folder, or json file with to=coco"),
        Arg("split", str, "train", "split to write (from=...) or read (to=coco)"),
        Arg("data", str, None, "YOLO data.yaml (to=coco, to=classify)"),
        Arg(
            "pad",
            float,
            0.1,
            "to=classify: grow each box by this fraction of its size per side",
            check=lambda v: v >= 0,
            rule="must be >= 0",
        ),
        Arg(
            "min_size",
            int,
            8,
            "to=classify: skip boxes whose shorter side is under this (px)",
            check=lambda v: v >= 1,
            rule="must be >= 1",
        ),
        Arg("names", list, None, "class names, comma-separated (from=voc)"),
        Arg("keep_difficult", bool, True, "keep VOC objects marked difficult"),
        Arg("one_based", bool, True, "VOC pixel coordinates start at 1"),
        Arg("copy", str, "copy", "how images get into out: copy, hardlink or symlink"),
    ),
    settings=False,
)


def run(args: Sequence[str]) -> int:
    from ..data.convert import coco_to_yolo, yolo_to_coco
    from ..data.voc import voc_to_yolo

    a = parse(COMMAND, args).special
    src, dst = a["from"], a["to"]
    if src == "coco" and a["json"] and a["images"]:
        report = coco_to_yolo(a["json"], a["images"], a["out"], split=a["split"], copy=a["copy"])
    elif src == "voc" and a["xml"] and a["images"]:
        report = voc_to_yolo(
            a["xml"], a["images"], a["out"], names=a["names"], split=a["split"],
            keep_difficult=a["keep_difficult"], one_based=a["one_based"], copy=a["copy"],
        )  # fmt: skip
    elif dst == "classify" and a["data"]:
        from ..data.crops import detection_to_classify

        crops = detection_to_classify(a["data"], a["out"], pad=a["pad"], min_size=a["min_size"])
        print(crops.summary())
        return 0
    elif dst == "coco" and a["data"]:
        gt = yolo_to_coco(a["data"], a["split"], a["out"])
        print(f"{len(gt['images'])} images, {len(gt['annotations'])} boxes -> {a['out']}")
        return 0
    else:
        raise ConfigError(
            "detforge convert: use from=coco json=... images=... out=..., "
            "from=voc xml=... images=... out=..., to=coco data=... split=val out=x.json, or "
            "to=classify data=... out=DIR"
        )
    print(report.summary())
    for m in report.messages:
        print(f"  {m}")
    return 0
