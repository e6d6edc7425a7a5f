"""``detforge`` command line: ``detforge <command> key=value ...``.

Nothing imports this module; it turns arguments into calls of the library and errors into
one-line messages (exit status 2 for usage and input errors).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .config.fields import ConfigError

log = logging.getLogger("detforge")

USAGE = """usage: detforge <command> [key=value ...]

commands:
  train      train a detector          detforge train [data=data.yaml] [model=yolo-n] [epochs=100]
  val        validate weights          detforge val weights=runs/train/weights/best.pt [data=...]
             (weights=a.pt,b.pt ensembles; augment=true for test-time augmentation)
  predict    detect objects in images  detforge predict weights=best.pt source=<image|folder|glob>
  eval-json  score COCO results json   detforge eval-json gt=gt.json pred=pred.json [--json]
  diagnose   TIDE-style error analysis  detforge diagnose weights=best.pt [data=...]
             or from files: detforge diagnose gt=gt.json pred=pred.json [images=DIR]
  augment-preview  a grid of augmented training images   detforge augment-preview data=.. n=16
  data-stats per-class boxes, sizes, aspect ratios, empty and duplicate images (+ plots)
  convert    from=coco json=.. images=.. out=.. | from=voc xml=.. images=.. out=.. |
             to=coco data=data.yaml split=val out=gt.json
  split      split a flat folder into train/val by seed, stratified   src=.. out=.. val=0.2
  models     list built-in models
  recipes    list training recipes     detforge train recipe=finetune data=...
  schedule   plot the lr of every parameter group   detforge schedule [settings] [out=lr.png]
  lr-find    learning-rate range test  detforge lr-find data=... [iters=100] [start_lr=1e-7]
  config     list every setting with its default and the module that acts on it

Settings: key=value with dotted keys (optim.lr0=0.01) or aliases (data, model, epochs, imgsz,
batch, device, name, workers, seed, amp, lr0, optimizer, project, resume, weights); cfg=FILE.yaml
loads settings from a file; recipe=NAME starts from a shipped preset (detforge recipes);
DETFORGE_<SECTION>__<KEY> environment variables also apply.
"""


def _split_args(args: Sequence[str], allowed: set[str]) -> tuple[dict[str, str], list[str]]:
    """Pull command-specific keys (weights=, source=...) out of the config overrides."""
    special, rest = {}, []
    for a in args:
        key = a.split("=", 1)[0]
        if "=" in a and key in allowed:
            special[key] = a.split("=", 1)[1]
        else:
            rest.append(a)
    return special, rest


def _require(special: dict, key: str, command: str, example: str) -> str:
    if not special.get(key):
        raise ConfigError(f"detforge {command}: missing {key}= (e.g. {example})")
    return special[key]


def cmd_train(args: Sequence[str]) -> int:
    from .api import describe_run, summary_lines, train_config
    from .engine.trainer import Trainer

    special, rest = _split_args(args, {"cfg"})
    notes: list[tuple[int, str]] = []
    cfg = train_config(rest, cfg_file=special.get("cfg"), notes=notes)
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun the main process reports
    if main_process:
        print(describe_run(cfg), flush=True)
    for level, line in notes:
        log.log(level, line)
    result = Trainer(cfg).fit()
    if main_process:
        print("\n" + "\n".join(summary_lines(result, cfg)))
    return 0


def _weights_list(special: dict, command: str) -> list[str]:
    weights = _require(special, "weights", command, "weights=runs/train/weights/best.pt")
    return [w for w in weights.split(",") if w]


def cmd_val(args: Sequence[str]) -> int:
    from .api import config_from_checkpoint
    from .eval.validate_cmd import run_validation

    special, rest = _split_args(args, {"weights", "split"})
    weights = _weights_list(special, "val")
    aliases = {"conf": "eval.conf", "iou": "eval.iou", "augment": "eval.augment"}
    cfg = config_from_checkpoint(weights[0], ["train.name=val", *rest], aliases)
    run_validation(cfg, weights, special.get("split", "val"))
    return 0


def cmd_diagnose(args: Sequence[str]) -> int:
    from .api import config_from_checkpoint

    special, rest = _split_args(args, {"weights", "split", "gt", "pred", "images", "out"})
    if special.get("gt") or special.get("pred"):
        from .eval.diagnose import diagnose_coco_json, format_diagnosis

        gt = _require(special, "gt", "diagnose", "gt=instances_val.json")
        pred = _require(special, "pred", "diagnose", "pred=predictions.json")
        if rest:
            raise ConfigError(f"detforge diagnose: unexpected argument(s) {' '.join(rest)}")
        out = special.get("out", "runs/diagnose")
        summary = diagnose_coco_json(gt, pred, out, image_dir=special.get("images"))
        print(format_diagnosis(summary))
        print(f"\ndiagnosis written to {out}")
        return 0
    from .eval.validate_cmd import run_diagnosis

    weights = _weights_list(special, "diagnose")
    cfg = config_from_checkpoint(
        weights[0], ["train.name=diagnose", *rest], {"conf": "eval.conf", "iou": "eval.iou"}
    )
    run_diagnosis(cfg, weights, special.get("split", "val"))
    return 0


def cmd_predict(args: Sequence[str]) -> int:
    from .api import config_from_checkpoint
    from .predict_cmd import run_predict

    special, rest = _split_args(args, {"weights", "source"})
    weights = _weights_list(special, "predict")
    source = _require(special, "source", "predict", "source=images/ or source='*.jpg'")
    aliases = {
        "conf": "predict.conf",
        "iou": "predict.iou",
        "max_det": "predict.max_det",
        "augment": "predict.augment",
        "name": "train.name",
    }
    cfg = config_from_checkpoint(weights[0], ["train.name=predict", *rest], aliases)
    run_predict(cfg, weights, source)
    return 0


def cmd_eval_json(args: Sequence[str]) -> int:
    from .eval.cocojson import evaluate_coco_json, format_stats_table

    as_json = "--json" in args
    special, rest = _split_args([a for a in args if a != "--json"], {"gt", "pred"})
    if rest:
        raise ConfigError(f"detforge eval-json: unexpected argument(s) {' '.join(rest)}")
    gt = _require(special, "gt", "eval-json", "gt=instances_val.json")
    pred = _require(special, "pred", "eval-json", "pred=predictions.json")
    result = evaluate_coco_json(gt, pred)
    if as_json:
        print(json.dumps({k: float(v) for k, v in result.stats.items()}, indent=2))
    else:
        print(format_stats_table(result.stats))
    return 0


def cmd_models(args: Sequence[str]) -> int:
    from .models import available_models

    print("\n".join(available_models()))
    return 0


def cmd_schedule(args: Sequence[str]) -> int:
    from .config import load_config
    from .engine.tools import plot_schedule_from_config

    special, rest = _split_args(args, {"cfg", "out"})
    cfg = load_config(rest, cfg_file=special.get("cfg"))
    out = plot_schedule_from_config(cfg, special.get("out", "lr_schedule.png"))
    print(f"learning-rate curves written to {out}")
    return 0


def cmd_lr_find(args: Sequence[str]) -> int:
    from .config import load_config
    from .config.loader import parse_value
    from .engine.tools import lr_find_from_config

    special, rest = _split_args(args, {"cfg", "iters", "start_lr", "end_lr"})
    cfg = load_config(["train.name=lr_find", *rest], cfg_file=special.get("cfg"))
    kw = {k: parse_value(v) for k, v in special.items() if k != "cfg"}
    for k, v in kw.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"lr-find: {k} must be a positive number, got {v!r}")
    result, out = lr_find_from_config(cfg, **kw)
    lr = f"{result.suggestion:.3g}" if result.suggestion else "none (too few points)"
    stop = " (stopped early: the loss diverged)" if result.stopped_early else ""
    print(f"{len(result.lrs)} steps{stop}; suggested optim.lr0: {lr}; plot: {out / 'lr_find.png'}")
    return 0


def cmd_augment_preview(args: Sequence[str]) -> int:
    from .config import load_config
    from .config.loader import parse_value
    from .data.datayaml import load_data_yaml
    from .data.preview import augment_preview
    from .engine.setup_data import build_train_set, resolve_data_yaml

    special, rest = _split_args(args, {"cfg", "n", "out", "epoch"})
    cfg = load_config(rest, cfg_file=special.get("cfg"))
    n, epoch = parse_value(special.get("n", "16")), parse_value(special.get("epoch", "0"))
    for key, v in (("n", n), ("epoch", epoch)):
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "n" else 0):
            raise ConfigError(f"augment-preview: {key} must be a whole number, got {v!r}")
    dataset = build_train_set(cfg, load_data_yaml(resolve_data_yaml(cfg)))
    out = augment_preview(
        dataset,
        n=n,
        out_png=special.get("out", "augment_preview.png"),
        seed=cfg.train.seed,
        epoch=epoch,
    )
    print(f"{n} augmented training images (epoch {epoch}) drawn to {out}")
    return 0


def cmd_recipes(args: Sequence[str]) -> int:
    from .config.recipes import available_recipes, recipe_description

    for name in available_recipes():
        print(f"{name:<15} {recipe_description(name)}")
    return 0


def cmd_config(args: Sequence[str]) -> int:
    from .config.docs import settings_table

    print(settings_table())
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": cmd_train,
    "val": cmd_val,
    "predict": cmd_predict,
    "eval-json": cmd_eval_json,
    "diagnose": cmd_diagnose,
    "models": cmd_models,
    "config": cmd_config,
    "recipes": cmd_recipes,
    "schedule": cmd_schedule,
    "lr-find": cmd_lr_find,
    "augment-preview": cmd_augment_preview,
    "data-stats": lambda a: _data_cmd("cmd_data_stats", a),
    "convert": lambda a: _data_cmd("cmd_convert", a),
    "split": lambda a: _data_cmd("cmd_split", a),
}


def _data_cmd(name: str, args: Sequence[str]) -> int:
    from . import cli_data

    return getattr(cli_data, name)(args)


def main(argv: Sequence[str] | None = None) -> int:
    from .utils.threads import prefer_passive_openmp

    prefer_passive_openmp()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        from .config.fields import suggest

        print(
            f"detforge: unknown command '{command}'{suggest(command, COMMANDS)}\n", file=sys.stderr
        )
        print(USAGE, file=sys.stderr)
        return 2
    if "-h" in args or "--help" in args:
        print(USAGE)
        return 0
    # under torchrun only the main process talks; the others report warnings and errors
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    from .data.errors import DataError
    from .engine.checkpoint import CheckpointError

    try:
        return COMMANDS[command](args)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as e:
        # some messages already name the command; say it once
        message = str(e).removeprefix(f"detforge {command}: ")
        print(f"detforge {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detforge {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
