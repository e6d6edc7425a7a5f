"""``detforge split``: split a flat image folder into train/val by seed, stratified by class."""

from __future__ import annotations

from collections.abc import Sequence

from ..config.fields import ConfigError
from .spec import REQUIRED, Arg, Command, parse

__all__ = ["COMMAND", "run"]

COMMAND = Command(
    "split",
    "Split a flat folder of images and YOLO labels into train/val, reproducible by seed and "
    "stratified by class; writes a data.yaml.",
    "detforge split src=DIR out=DIR [val=0.2] [seed=0] [stratify=true] [layout=lists]",
    (
        Arg("src", str, REQUIRED, "folder of images with YOLO txt labels"),
        Arg("out", str, REQUIRED, "output folder (data.yaml and the split)"),
        Arg("val", float, 0.2, "fraction of images for val, in (0, 1)"),
        Arg("seed", int, 0, "random seed of the split"),
        Arg("stratify", bool, True, "keep class proportions in both splits"),
        Arg("layout", str, "lists", "lists (txt files of paths) or a copied folder layout"),
        Arg("names", list, None, "class names, comma-separated"),
    ),
    settings=False,
)


def run(args: Sequence[str]) -> int:
    from ..data.split import split_dataset

    a = parse(COMMAND, args).special
    if not 0 < a["val"] < 1:
        raise ConfigError(f"detforge split: val must be a fraction in (0, 1), got {a['val']}")
    res = split_dataset(
        a["src"],
        a["out"],
        val_fraction=a["val"],
        seed=a["seed"],
        stratify=a["stratify"],
        names=a["names"],
        layout=a["layout"],
    )
    print(f"{len(res.train)} train / {len(res.val)} val images; data.yaml: {res.data_yaml}")
    print(f"class names ({res.names_from}): {', '.join(res.names)}")
    return 0
