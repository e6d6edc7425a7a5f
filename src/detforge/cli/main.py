"""``detforge`` command line: ``detforge <command> key=value ...``.

Nothing imports this package; it turns arguments into calls of the library and errors into
one-line messages (exit status 2 for usage and input errors). Each command is a module with its
argument spec (``COMMAND``) and ``run``; this module dispatches.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence

from ..config.fields import ConfigError
from ..utils.atomic import WriteError
from .spec import Command, command_help

log = logging.getLogger("detforge")

USAGE = """usage: detforge <command> [key=value ...]

commands:
  train      train a detector          detforge train [data=data.yaml] [model=yolo-n] [epochs=100]
  val        validate weights          detforge val weights=runs/train/weights/best.pt [data=...]
             (weights=a.pt,b.pt ensembles; augment=true for test-time augmentation;
             classes_map=car:vehicle,... when the weights' classes differ from the data's)
  predict    detect objects in images  detforge predict weights=best.pt source=<image|folder|glob>
             or a video, stream or camera: source=video.mp4|rtsp://...|0 [vid_stride=N]
  eval-json  score COCO results json   detforge eval-json gt=gt.json pred=pred.json [--json]
  diagnose   TIDE-style error analysis  detforge diagnose weights=best.pt [data=...]
             or from files: detforge diagnose gt=gt.json pred=pred.json [images=DIR]
  augment-preview  a grid of augmented training images   detforge augment-preview data=.. n=16
  data-stats per-class boxes, sizes, aspect ratios, empty and duplicate images (+ plots)
  convert    from=coco json=.. images=.. out=.. | from=voc xml=.. images=.. out=.. |
             to=coco data=data.yaml split=val out=gt.json
  kfold      k-fold cross-validation   detforge kfold data=data.yaml [k=5] [folds=0,2] [settings]
  split      split a flat folder into train/val by seed, stratified   src=.. out=.. val=0.2
  export     weights -> ONNX or OpenVINO, checked   detforge export weights=best.pt [format=..]
  benchmark  latency, images/s, mAP per format   detforge benchmark weights=best.pt [imgsz=320,640]
  serve      HTTP API and a web page   detforge serve weights=best.pt [host=127.0.0.1] [port=8000]
  cam        attention maps on images  detforge cam weights=best.pt source=.. [method=gradcam]
  models     list built-in models
  recipes    list training recipes     detforge train recipe=finetune data=...
  schedule   plot the lr of every parameter group   detforge schedule [settings] [out=lr.png]
  lr-find    learning-rate range test  detforge lr-find data=... [iters=100] [start_lr=1e-7]
  tune       hyperparameter search     detforge tune space=grid-lr-warmup data=... [trials=N]
             [workers=K] [sampler=tpe|random|grid|cmaes] [pruner=hyperband|median|sha|none]
  spaces     list shipped search spaces
  config     list every setting with its default and the module that acts on it

detforge <command> -h prints that command's own arguments.

Settings: key=value with dotted keys (optim.lr0=0.01) or aliases (data, model, epochs, time, imgsz,
batch, device, name, workers, seed, amp, lr0, optimizer, project, resume, weights,
track, anchors, backbone, backbone_weights, loss.class, task); cfg=FILE.yaml
loads settings from a file; recipe=NAME starts from a shipped preset (detforge recipes);
DETFORGE_<SECTION>__<KEY> environment variables also apply.
"""


def _commands() -> dict[str, tuple[Command, Callable[[Sequence[str]], int]]]:
    """Every command's spec and entry point (the modules import their heavy parts lazily)."""
    from . import (
        augment_preview,
        benchmark,
        cam,
        convert,
        data_stats,
        diagnose,
        eval_json,
        export,
        kfold,
        listing,
        lr_find,
        predict,
        schedule,
        serve,
        split,
        train,
        tune,
        val,
    )

    table = [
        (train.COMMAND, train.run),
        (val.COMMAND, val.run),
        (predict.COMMAND, predict.run),
        (eval_json.COMMAND, eval_json.run),
        (diagnose.COMMAND, diagnose.run),
        (listing.MODELS, listing.run_models),
        (listing.CONFIG, listing.run_config),
        (listing.RECIPES, listing.run_recipes),
        (schedule.COMMAND, schedule.run),
        (lr_find.COMMAND, lr_find.run),
        (augment_preview.COMMAND, augment_preview.run),
        (data_stats.COMMAND, data_stats.run),
        (convert.COMMAND, convert.run),
        (split.COMMAND, split.run),
        (kfold.COMMAND, kfold.run),
        (tune.COMMAND, tune.run),
        (listing.SPACES, listing.run_spaces),
        (export.COMMAND, export.run),
        (benchmark.COMMAND, benchmark.run),
        (serve.COMMAND, serve.run),
        (cam.COMMAND, cam.run),
    ]
    return {c.name: (c, fn) for c, fn in table}


def _export_error() -> type[Exception]:
    from ..export.errors import ExportError

    return ExportError


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _describe_os_error(e: OSError) -> str:
    """One line naming the path and the cause."""
    if isinstance(e, WriteError) or not e.filename:
        return str(e)
    verb = "cannot write " if e.errno in _WRITE_ERRNOS else ""
    return f"{verb}{e.filename}: {e.strerror}"


def main(argv: Sequence[str] | None = None) -> int:
    from ..utils.threads import prefer_passive_openmp

    prefer_passive_openmp()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    commands = _commands()
    if command not in commands:
        from ..config.fields import suggest

        print(
            f"detforge: unknown command '{command}'{suggest(command, commands)}\n", file=sys.stderr
        )
        print(USAGE, file=sys.stderr)
        return 2
    spec, run = commands[command]
    if "-h" in args or "--help" in args:
        print(command_help(spec))
        return 0
    # under torchrun only the main process talks; the others report warnings and errors
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    from ..data.errors import DataError
    from ..engine.checkpoint import CheckpointError

    try:
        return run(args)
    except (ConfigError, DataError, CheckpointError, _export_error()) as e:
        # some messages already name the command; say it once
        message = str(e).removeprefix(f"detforge {command}: ")
        print(f"detforge {command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as e:  # full disk, read-only or missing folder: one line, not a traceback
        print(f"detforge {command}: error: {_describe_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detforge {command}: interrupted", file=sys.stderr)
        return 130
