"""``detforge train``: train a detector (``resume=last.pt`` continues a run)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from .spec import Arg, Command, parse

COMMAND = Command(
    "train",
    "Train a detector; the run folder gets weights/, results.csv and the resolved config.",
    "detforge train [data=data.yaml] [model=yolo-n] [epochs=100] [settings] [--json]",
    (Arg("cfg", str, None, "settings file (YAML)"),),
    json=True,
)


def run(args: Sequence[str]) -> int:
    from ..engine.resume import load_train_config
    from ..engine.trainer import Trainer

    p = parse(COMMAND, args)
    cfg = load_train_config(p.settings, cfg_file=p.special["cfg"])
    result = Trainer(cfg).fit()
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun the main process reports
    m = result.metrics
    if p.as_json:
        summary = {
            "run_dir": str(result.run_dir),
            "best_epoch": result.best_epoch,
            "metrics": {k: float(v) for k, v in m.items()},
        }
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"\ndone: {result.run_dir}  best epoch {result.best_epoch}  "
        f"mAP50 {m.get('map50', float('nan')):.4f}  mAP50-95 {m.get('map50_95', float('nan')):.4f}"
        f"  ({result.train_images / max(result.train_seconds, 1e-9):.1f} train images/s)"
    )
    return 0
