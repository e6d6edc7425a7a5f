"""``detforge val``: score saved weights (or an ensemble) on a split and explain the result."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from ..config import RunConfig
from ..config.fields import ConfigError
from ..engine.rundir import make_run_dir, write_text_atomic
from .spec import REQUIRED, Arg, Command, parse

log = logging.getLogger("detforge")

__all__ = ["COMMAND", "run", "run_validation", "evaluate_weights"]

COMMAND = Command(
    "val",
    "Validate weights on a split of the data: COCO stats, per-class table, eval/ plots and "
    "metrics.json in the run folder (weights=a.pt,b.pt ensembles; augment=true for test-time "
    "augmentation).",
    "detforge val weights=runs/train/weights/best.pt [data=...] [split=val] [settings] [--json]",
    (
        Arg(
            "weights",
            str,
            REQUIRED,
            "checkpoint(s), comma-separated for an ensemble",
            example="weights=runs/train/weights/best.pt",
        ),
        Arg("split", str, "val", "data split to score"),
        Arg(
            "classes_map",
            str,
            None,
            "weights class:data class pairs when the weights' classes differ from the data's",
            example="classes_map=car:vehicle,truck:vehicle",
        ),
    ),
    json=True,
)
ALIASES = {"conf": "eval.conf", "iou": "eval.iou", "augment": "eval.augment"}


def weights_list(text: str) -> list[str]:
    """``a.pt,b.pt`` -> ``["a.pt", "b.pt"]``."""
    return [w for w in text.split(",") if w]


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint

    p = parse(COMMAND, args)
    weights = weights_list(p.special["weights"])
    cfg = config_from_checkpoint(weights[0], ["train.name=val", *p.settings], ALIASES)
    if cfg.train.task == "classify":
        run_classify_validation(cfg, weights, p.special["split"], p.as_json)
        return 0
    if weights[0].lower().endswith((".onnx", ".xml")) and not cfg.data.path:
        raise ConfigError(f"val: {weights[0]} holds no data settings: give data=data.yaml")
    run_validation(
        cfg, weights, p.special["split"], as_json=p.as_json, classes_map=p.special["classes_map"]
    )
    return 0


def run_classify_validation(
    cfg: RunConfig, weights: Sequence[str], split: str = "val", as_json: bool = False
):
    """A classifier checkpoint: top-1/top-5/balanced accuracy, the per-class table,
    confusion_matrix.csv/.png, hardest.json and metrics.json in the run folder."""
    from ..engine.classify_infer import validate_classifier
    from ..report.classify_report import format_classify_table, write_classify_outputs

    if len(weights) != 1:
        raise ConfigError("weights: classifiers are validated one checkpoint at a time")
    val = validate_classifier(cfg, weights[0], split)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    write_classify_outputs(out, val, plot=cfg.eval.report)
    d = val.detail.as_dict(val.names)
    summary = {"weights": str(weights[0]), "split": split, "metrics": val.metrics,
               "per_class": d["per_class"]}  # fmt: skip
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_classify_table(val))
        print(f"\nresults written to {out} ({val.seconds:.1f} s)")
    return val


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
    from ..engine.setup_data import (
        build_val_loader,
        build_val_set,
        resolve_data_yaml,
        resolve_workers,
    )
    from ..eval.validator import Validator
    from ..infer.device import resolve_amp
    from ..infer.tta import ensemble_kwargs
    from ..models.classmap import ClassRemap, check_same_classes, parse_classes_map

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
        for d in dets:
            d._refuse_onnx("classes_map")
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
    cfg: RunConfig,
    weights: Sequence[str],
    split: str = "val",
    as_json: bool = False,
    classes_map: str | None = None,
):
    """Score the weights, write the run folder, print the stats (as json with ``as_json``)."""
    from ..eval.cocojson import format_stats_table
    from ..report.explain import explain
    from ..report.run_report import (
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
    if as_json:
        print(json.dumps(summary, indent=2))
        log.info("results written to %s (%.1f s)", out, val.seconds)
        return val
    print(format_stats_table(val.result.stats))
    print()
    print(format_per_class(val.result, names, explained))
    print(f"\nresults written to {out} ({val.seconds:.1f} s)")
    return val
