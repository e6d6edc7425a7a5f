"""``detforge train``: train a detector, or an image classifier with task=classify
(``resume=last.pt`` continues a run)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from .spec import Arg, Command, parse

log = logging.getLogger("detforge")

COMMAND = Command(
    "train",
    "Train a detector (or a classifier: task=classify); the run folder gets weights/, "
    "results.csv and the resolved config.",
    "detforge train [data=data.yaml] [model=yolo-n] [epochs=100] [settings] [--json]",
    (Arg("cfg", str, None, "settings file (YAML)"),),
    json=True,
)


def run(args: Sequence[str]) -> int:
    from ..api import describe_run, summary_lines, train_config
    from ..engine.trainer import Trainer
    from ..track import tracking_hooks

    p = parse(COMMAND, args)
    notes: list[tuple[int, str]] = []
    cfg = train_config(p.settings, cfg_file=p.special["cfg"], notes=notes)
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun the main process reports
    if main_process and not p.as_json:
        print(describe_run(cfg), flush=True)
    for level, line in notes:
        log.log(level, line)
    result = Trainer(cfg, hooks=tracking_hooks(cfg)).fit()
    if not main_process:
        return 0
    if p.as_json:
        summary = {
            "run_dir": str(result.run_dir),
            "best_epoch": result.best_epoch,
            "metrics": {k: float(v) for k, v in result.metrics.items()},
        }
        print(json.dumps(summary, indent=2))
        return 0
    print("\n" + "\n".join(summary_lines(result, cfg)))
    return 0
