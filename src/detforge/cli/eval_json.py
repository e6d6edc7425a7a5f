"""``detforge eval-json``: score a COCO results json against COCO ground truth."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .spec import REQUIRED, Arg, Command, parse

COMMAND = Command(
    "eval-json",
    "Score a COCO results file against COCO ground truth (the 12 pycocotools stats).",
    "detforge eval-json gt=gt.json pred=pred.json [--json]",
    (
        Arg("gt", str, REQUIRED, "COCO ground-truth json", example="gt=instances_val.json"),
        Arg("pred", str, REQUIRED, "COCO results json", example="pred=predictions.json"),
    ),
    settings=False,
    json=True,
)


def run(args: Sequence[str]) -> int:
    from ..eval.cocojson import evaluate_coco_json, format_stats_table

    p = parse(COMMAND, args)
    result = evaluate_coco_json(p.special["gt"], p.special["pred"])
    if p.as_json:
        print(json.dumps({k: float(v) for k, v in result.stats.items()}, indent=2))
    else:
        print(format_stats_table(result.stats))
    return 0
