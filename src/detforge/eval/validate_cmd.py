"""``detforge val``: validate saved weights on a split and write the metrics next to them."""

from __future__ import annotations

import json
import logging

from ..config import RunConfig
from ..engine.rundir import make_run_dir, write_text_atomic

log = logging.getLogger("detforge")


def run_validation(cfg: RunConfig, weights: str, split: str = "val"):
    from ..api import Detector
    from ..data.datayaml import load_data_yaml
    from ..engine.device import resolve_amp
    from ..engine.setup_data import (
        build_val_loader,
        build_val_set,
        resolve_data_yaml,
        resolve_workers,
    )
    from .cocojson import format_stats_table
    from .report import export_run_predictions, format_per_class
    from .validator import Validator

    det = Detector.load(weights, device=cfg.train.device, imgsz=cfg.train.imgsz)
    spec = load_data_yaml(resolve_data_yaml(cfg))
    if len(spec.names) != det.model.nc:
        log.warning("data has %d classes but the weights have %d", len(spec.names), det.model.nc)
    dataset = build_val_set(cfg, spec, split)
    loader = build_val_loader(cfg, dataset, resolve_workers(cfg.data.workers, det.device))
    validator = Validator(
        dataset,
        loader,
        det.device,
        resolve_amp(cfg.train.amp, det.device),
        cfg.eval.conf,
        cfg.eval.iou,
        cfg.eval.max_det,
        progress=cfg.train.progress,
    )
    val = validator.run(det.model, keep_predictions=cfg.eval.save_json)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    print(format_stats_table(val.result.stats))
    print()
    print(format_per_class(val.result, spec.names))
    write_text_atomic(
        out / "metrics.json",
        json.dumps(
            {
                "weights": str(weights),
                "split": split,
                "stats": val.result.stats,
                "per_class": {
                    spec.names[int(k)]: v
                    for k, v in val.result.per_class.items()
                    if int(k) < len(spec.names)
                },
            },
            indent=2,
        ),
    )
    if cfg.eval.save_json:
        export_run_predictions(out, dataset, val.predictions)
    print(f"\nresults written to {out} ({val.seconds:.1f} s)")
    return val
