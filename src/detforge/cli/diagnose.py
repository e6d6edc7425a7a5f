"""``detforge diagnose``: TIDE-style error analysis of weights on a split, or of COCO json files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..config.fields import ConfigError
from ..utils.atomic import json_default
from ..utils.rundir import make_run_dir
from .spec import Arg, Command, parse
from .val import evaluate_weights, weights_list

__all__ = ["COMMAND", "run", "run_diagnosis"]

COMMAND = Command(
    "diagnose",
    "TIDE-style error analysis (dAP50 per error type, per class and size, worst images): "
    "of weights on a split of the data, or of a COCO results file against COCO ground truth.",
    "detforge diagnose weights=best.pt [data=...] [split=val] [settings] [--json]\n"
    "       detforge diagnose gt=gt.json pred=pred.json [images=DIR] [out=runs/diagnose]",
    (
        Arg("weights", str, None, "checkpoint(s), comma-separated for an ensemble",
            example="weights=runs/train/weights/best.pt"),
        Arg("split", str, "val", "data split to diagnose (with weights=)"),
        Arg("classes_map", str, None, "weights class:data class pairs (with weights=), as in val",
            example="classes_map=car:vehicle"),
        Arg("gt", str, None, "COCO ground-truth json (instead of weights=)",
            example="gt=instances_val.json"),
        Arg("pred", str, None, "COCO results json (with gt=)", example="pred=predictions.json"),
        Arg("images", str, None, "image folder of gt= for the gallery"),
        Arg("out", str, None, "output folder (with gt=; default: a new runs/diagnose, "
            "runs/diagnose2, ...)"),
    ),
    json=True,
)  # fmt: skip
_ALIASES = {"conf": "eval.conf", "iou": "eval.iou"}


def _need(special: dict[str, Any], key: str) -> str:
    if not special[key]:
        arg = next(a for a in COMMAND.args if a.name == key)
        raise ConfigError(f"detforge diagnose: missing {key}= (e.g. {arg.example})")
    return special[key]


def _print(summary: dict[str, Any], out: str | Path, as_json: bool) -> None:
    from ..report.diagnose import format_diagnosis

    if as_json:
        print(json.dumps(summary, indent=2, default=json_default))
        return
    print(format_diagnosis(summary))
    print(f"\ndiagnosis written to {out}")


def run_diagnosis(
    cfg: RunConfig,
    weights: Sequence[str],
    split: str = "val",
    as_json: bool = False,
    classes_map: str | None = None,
) -> Path:
    """Diagnose the weights' predictions on a split; writes the files into a new run folder."""
    from ..report.diagnose import diagnose
    from ..report.run_report import dataset_ground_truth, dataset_image_paths

    val, dataset, names = evaluate_weights(cfg, weights, split, classes_map)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    summary = diagnose(
        val.predictions, dataset_ground_truth(dataset), names, out,
        images=dataset_image_paths(dataset),
    )  # fmt: skip
    _print(summary, out, as_json)
    return out


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint

    p = parse(COMMAND, args)
    special = p.special
    if special["gt"] or special["pred"]:
        from ..report.diagnose import diagnose_coco_json

        gt, pred = _need(special, "gt"), _need(special, "pred")
        if p.settings:
            raise ConfigError(f"detforge diagnose: unexpected argument(s) {' '.join(p.settings)}")
        out = special["out"] or make_run_dir("runs", "diagnose")  # numbered, as train runs
        summary = diagnose_coco_json(gt, pred, out, image_dir=special["images"])
        _print(summary, out, p.as_json)
        return 0
    weights = weights_list(_need(special, "weights"))
    cfg = config_from_checkpoint(weights[0], ["train.name=diagnose", *p.settings], _ALIASES)
    run_diagnosis(
        cfg, weights, special["split"], as_json=p.as_json, classes_map=special["classes_map"]
    )
    return 0
