"""``detforge models``, ``detforge recipes`` and ``detforge config``: what is built in."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Arg, Command, parse

MODELS = Command(
    "models",
    "List the built-in models (parameters, GFLOPs, pretrained weights) and the backbones.",
    "detforge models [only=yolo-n,yolov5-s] [imgsz=640]",
    (
        Arg("only", list, [], "List only these models (comma-separated names).", "yolo-n"),
        Arg(
            "imgsz",
            int,
            640,
            "Square input size of the GFLOPs.",
            "320",
            check=lambda v: v > 0 and v % 32 == 0,
            rule="must be a positive multiple of 32",
        ),
    ),  # fmt: skip
    settings=False,
)
RECIPES = Command(
    "recipes",
    "List the training recipes (presets: detforge train recipe=NAME ...).",
    "detforge recipes",
    settings=False,
)
SPACES = Command(
    "spaces",
    "List the shipped search spaces (detforge tune space=NAME ...).",
    "detforge spaces",
    settings=False,
)
CONFIG = Command(
    "config",
    "List every setting with its default and the module that acts on it.",
    "detforge config",
    settings=False,
)


def run_models(args: Sequence[str]) -> int:
    from ..models.catalog import backbone_rows, model_rows

    special = parse(MODELS, args).special
    imgsz, only = special["imgsz"], special["only"]
    rows = model_rows(only or None, imgsz)
    print(f"models (80 classes; GFLOPs at {imgsz}x{imgsz}; detforge ships no trained detector "
          "weights: model.weights starts from a checkpoint of yours, or weights=coco from "
          "torchvision's for its detectors):")  # fmt: skip
    print(f"{'model':<21} {'head':<13} {'parameters':>12} {'GFLOPs':>8}  pretrained")
    for r in rows:
        print(f"{r.name:<21} {r.kind:<13} {r.params:>12,} {r.gflops:>8.2f}  {r.pretrained}")
    if only:
        return 0
    print(f"\nbackbones (backbone=NAME, under any YOLO model above; alone at {imgsz}):")
    print(f"{'backbone':<21} {'':<13} {'parameters':>12} {'GFLOPs':>8}  pretrained weights")
    print(f"{'csp':<21} {'(default)':<13} {'-':>12} {'-':>8}  none")
    for r in backbone_rows(imgsz):
        size = f"{r.params:>12,} {r.gflops:>8.2f}" if r.params else f"{'-':>12} {'-':>8}"
        print(f"{r.name:<21} {'':<13} {size}  {r.pretrained}")
    return 0


def run_recipes(args: Sequence[str]) -> int:
    from ..config.recipes import available_recipes, recipe_description

    parse(RECIPES, args)
    for name in available_recipes():
        print(f"{name:<15} {recipe_description(name)}")
    return 0


def run_config(args: Sequence[str]) -> int:
    from ..config.docs import settings_table

    parse(CONFIG, args)
    print(settings_table())
    return 0


def run_spaces(args: Sequence[str]) -> int:
    from ..tune.space import available_spaces, space_description

    parse(SPACES, args)
    for name in available_spaces():
        print(f"{name:<22} {space_description(name)}")
    return 0
