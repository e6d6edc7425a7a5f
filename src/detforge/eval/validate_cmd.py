"""``detforge val`` and ``detforge diagnose``: score saved weights on a split and explain it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ..config import RunConfig
from ..engine.rundir import make_run_dir, write_text_atomic

log = logging.getLogger("detforge")

__all__ = ["run_validation", "run_diagnosis", "evaluate_weights"]


def evaluate_weights(
    cfg: RunConfig, weights: Sequence[str], split: str = "val", classes_map: str | None = None
):
    """Validate one checkpoint (or an ensemble of several) on a split of the configured data.

    The weights must name the data's classes, in order, unless ``classes_map`` says how their
    classes map onto the data's (:func:`~detforge.models.classmap.parse_classes_map`).
    Returns (ValResult with predictions kept, dataset, class names).
    """
    from ..api import Detector
    from ..data.datayaml import load_data_yaml
    from ..engine.device import resolve_amp
    from ..engine.setup_data import (
        build_val_loader,
        build_val_set,
        resolve_data_yaml,
        resolve_workers,
    )
    from ..models.classmap import ClassRemap, check_same_classes, parse_classes_map
    from .tta import ensemble_kwargs
    from .validator import Validator

    dets = [Detector.load(w, device=cfg.train.device, imgsz=cfg.train.imgsz) for w in weights]
    for w, det in zip(weights[1:], dets[1:], strict=True):
        check_same_classes(
            det.names, f"weights {w}", dets[0].names, f"weights {weights[0]}",
            "; ensembled weights must predict the same classes",
        )  # fmt: skip
    data_yaml = resolve_data_yaml(cfg)
    spec = load_data_yaml(data_yaml)
    models = [d.model for d in dets]
    if classes_map:
        sources = parse_classes_map(classes_map, dets[0].names, spec.names)
        models = [ClassRemap(m, sources) for m in models]
        log.info("classes_map: %s", classes_map)
    else:
        check_same_classes(
            dets[0].names, f"weights {weights[0]}", spec.names, f"data {data_yaml}",
            "; to score them anyway, say which weights class is which data class with "
            "classes_map=WEIGHTS_CLASS:DATA_CLASS,... (names or indices)",
        )  # fmt: skip
    dataset = build_val_set(cfg, spec, split)
    loader = build_val_loader(cfg, dataset, resolve_workers(cfg.data.workers, dets[0].device))
    tta = ensemble_kwargs(cfg.tta, cfg.eval.augment, len(dets))
    validator = Validator(
        dataset, loader, dets[0].device, resolve_amp(cfg.train.amp, dets[0].device),
        cfg.eval.conf, cfg.eval.iou, cfg.eval.max_det, progress=cfg.train.progress,
        tta=tta, extra_models=models[1:],
    )  # fmt: skip
    if tta:
        log.info("test-time augmentation / ensemble: %s", tta)
    return validator.run(models[0], keep_predictions=True), dataset, list(spec.names)


def run_validation(
    cfg: RunConfig, weights: Sequence[str], split: str = "val", classes_map: str | None = None
):
    from .cocojson import format_stats_table
    from .explain import explain
    from .report import (
        dataset_ground_truth,
        dataset_image_paths,
        export_run_predictions,
        format_per_class,
    )

    val, dataset, names = evaluate_weights(cfg, weights, split, classes_map)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    explained = explain(
        val.result, val.predictions, dataset_ground_truth(dataset), names, out / "eval",
        images=dataset_image_paths(dataset),
    )  # fmt: skip
    print(format_stats_table(val.result.stats))
    print()
    print(format_per_class(val.result, names, explained))
    per_class = {names[int(k)]: v for k, v in val.result.per_class.items() if int(k) < len(names)}
    summary = {
        "weights": list(map(str, weights)),
        "split": split,
        "stats": val.result.stats,
        "per_class": per_class,
        "augment": cfg.eval.augment,
        "classes_map": classes_map,
    }
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    if cfg.eval.save_json:
        export_run_predictions(out, dataset, val.predictions)
    print(f"\nresults written to {out} ({val.seconds:.1f} s)")
    return val


def run_diagnosis(
    cfg: RunConfig, weights: Sequence[str], split: str = "val", classes_map: str | None = None
) -> Path:
    from .diagnose import diagnose, format_diagnosis
    from .report import dataset_ground_truth, dataset_image_paths

    val, dataset, names = evaluate_weights(cfg, weights, split, classes_map)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    summary = diagnose(
        val.predictions, dataset_ground_truth(dataset), names, out,
        images=dataset_image_paths(dataset),
    )  # fmt: skip
    print(format_diagnosis(summary))
    print(f"\ndiagnosis written to {out}")
    return out
