"""Side-by-side training benchmark: train several systems with one budget, score them alike.

Each ``--system`` is trained in its own subprocess, one after another, on the same data.yaml with
the same image size, epochs, batch, seed and workers; then the val predictions of every system
are scored by the same evaluator against the same COCO ground truth (built once with detforge's
own reader), cross-checked with pycocotools, written to ``OUT/results.json`` and printed as a
markdown table (ratios against the first peer system) ready for BENCHMARKS.md.

The issue's core benchmark (from the repository root; expect 1.5 to 3 hours on the 2 shared CPU
cores: the peer about 32 min of training when the machine is quiet, detforge yolo-n in fp32 about
1-2 h (2.8 images/s at 320 px in a loaded smoke run); run it in the background with an explicit
--out so that --skip-existing can continue it):

    .venv/bin/python bench/train_compare.py --data ../shared/data/hituav/data.yaml \\
        --imgsz 416 --epochs 30 --batch 16 --seed 0 --workers 2 \\
        --out bench/results/hituav_yolo11n_vs_yolo-n \\
        --system peer:yolo11n.yaml --system detforge:yolo-n

Smoke run (about 4 minutes; the peer trains on 10% of the images, detforge on all of them):

    .venv/bin/python bench/train_compare.py --data ../shared/data/hituav/data.yaml \\
        --imgsz 320 --epochs 1 --fraction 0.1 --out /tmp/train_compare_smoke \\
        --system peer:yolo11n.yaml --system detforge:yolo-n

Systems:
    peer:<model.yaml>[:label=NAME,hyp=FILE,threads=N]
                                 Ultralytics through bench/peer/ultralytics_train.py in the peer
                                 venv (never imported here); label ``peer-<yaml stem>`` unless
                                 given; ``hyp=`` a YAML of extra train arguments (the peer
                                 tuner's best_hyperparameters.yaml); ``threads=`` torch threads
                                 while training (default: the peer's own, CPU count - 1).
    detforge:<label>[:k=v,...]   ``detforge train`` with the shared budget, then the key=value
                                 settings (which win). A label that is a built-in model name
                                 (``detforge models``) trains that model unless model= is given.
                                 ``imgsz=`` among the settings trains, validates and measures
                                 that system at its own (CPU-sized) input; the table names it.

Protocol (same for every system, see bench/README.md):
- detforge trains on CPU with its own defaults (``amp=auto``: bf16 autocast on CPUs with
  AVX-512-BF16 or AMX, as here; a system may override, e.g. ``detforge:yolo-n-fp32:amp=off``;
  the peer trains in fp32 on CPU) and validates only after the last epoch
  (``train.val_interval=<epochs>``), as the peer trains with ``val=False``.
- Training time is the sum of the per-epoch training timers: detforge's results.csv ``epoch_time``
  (the trainer measures it around ``train_one_epoch`` only: validation and checkpoints excluded),
  the peer's epoch callbacks. images/s = train images x epochs / training time.
- Predictions come from the last-epoch weights (EMA) of every system: the peer's ``last.pt``
  through its own val, detforge's ``last.pt`` through ``detforge val`` (fp32, conf 0.001, NMS IoU
  0.7, max 300 detections, like the peer; ``eval.*`` settings of a system are passed on).
- Scoring: ``detforge.eval.cocojson.evaluate_coco`` on the driver's ground truth, cross-checked
  with pycocotools (all 12 stats within 1e-6, else the run exits with status 1).

Outputs in ``--out`` (default bench/results/<dataset>_<timestamp>/): results.json, table.md,
ground_truth.json, logs/<label>.<step>.log, systems/<label>.json (what --skip-existing reuses;
logs/<label>.train.cmd lets it continue an interrupted detforge training),
peer/<label>/ (the peer harness output), runs/<label>/ (detforge run), scoring/<label>/
(detforge val), cache/ (detforge label cache). Nothing is written anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from detforge.data.cocofmt import coco_gt_from_labels, load_json  # noqa: E402
from detforge.data.dataset import YoloDataset  # noqa: E402
from detforge.data.datayaml import load_data_yaml  # noqa: E402
from detforge.eval.coco import STAT_KEYS  # noqa: E402
from detforge.eval.cocojson import evaluate_coco  # noqa: E402
from detforge.eval.validator import ground_truth_xyxy  # noqa: E402
from detforge.utils.atomic import write_json_atomic, write_text_atomic  # noqa: E402

PEER_SCRIPT = REPO / "bench" / "peer" / "ultralytics_train.py"
DEFAULT_PEER_PYTHON = Path(os.environ.get("PEER_VENV", "/work/peer/venv")) / "bin" / "python"
# the shared data folder (never written to): ../shared beside the repository, as the tests find it
SHARED = Path(os.environ.get("DETFORGE_SHARED") or REPO.parent / "shared")
CROSS_CHECK_TOL = 1e-6
LOG_TAIL_LINES = 40
# Scoring settings of every system (the peer harness uses the same in its val).
VAL_SETTINGS = {"eval.conf": "0.001", "eval.iou": "0.7", "eval.max_det": "300"}
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Budget:
    """What every system gets: the same data, size, epochs, batch, seed and workers."""

    data: str
    imgsz: int
    epochs: int
    batch: int
    seed: int
    workers: int
    fraction: float  # peer only (smoke runs); detforge has no such option


@dataclass(frozen=True)
class Context:
    """Where and how the driver runs systems."""

    out: Path
    peer_python: Path
    detforge: Path
    timeout: float  # seconds per system, 0: none
    train_images: int  # train split size as detforge reads it
    resume: bool = False  # continue an interrupted detforge training (--skip-existing)


@dataclass
class System:
    """One ``--system`` argument."""

    kind: Literal["peer", "detforge"]
    label: str
    spec: str
    model: str | None = None  # peer model yaml, or the detforge model if known from the spec
    overrides: list[str] = field(default_factory=list)  # detforge key=value settings; peer --hyp


def system_imgsz(system: System, budget: Budget) -> int:
    """A detforge system's own ``imgsz=`` (a CPU-sized input for a heavy family: it trains,
    validates and is measured at that size, and the table says so), else the budget's."""
    for o in reversed(system.overrides):
        key, _, value = o.partition("=")
        if key in ("imgsz", "train.imgsz"):
            return int(value)
    return budget.imgsz


def mb_to_mib(mb: float) -> float:
    """detforge's results.csv states memory in MB (10^6 bytes), the peer in MiB (2^20 bytes)."""
    return mb * 1e6 / 2**20


def split_overrides(text: str) -> list[str]:
    """``"a=1,b=x,y"`` -> ``["a=1", "b=x,y"]``: a piece without '=' continues the value before."""
    out: list[str] = []
    for piece in text.split(","):
        if "=" in piece or not out:
            out.append(piece)
        else:
            out[-1] += "," + piece
    for item in out:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ValueError(f"expected key=value, got {item!r}")
    return [item.strip() for item in out]


def parse_system(spec: str, builtin_models: set[str]) -> System:
    """Parse ``peer:<model.yaml>`` or ``detforge:<label>[:key=value,...]``."""
    kind, _, rest = spec.partition(":")
    if kind == "peer":
        model, _, settings = rest.partition(":")
        options = dict(o.split("=", 1) for o in split_overrides(settings)) if settings else {}
        if not model or set(options) - {"label", "hyp", "threads"}:
            raise ValueError(
                f"--system {spec!r}: expected peer:<model.yaml>[:label=NAME,hyp=FILE,threads=N]"
            )
        stem = Path(model).name.removesuffix(".yaml").removesuffix(".yml")
        label = options.get("label", f"peer-{stem}")
        extra = [f"--hyp={Path(options['hyp']).resolve()}"] if "hyp" in options else []
        if "threads" in options:
            if not options["threads"].isdigit() or int(options["threads"]) < 1:
                raise ValueError(f"--system {spec!r}: threads must be a positive integer")
            extra.append(f"--threads={int(options['threads'])}")
        return System("peer", label, spec, model=model, overrides=extra)
    if kind == "detforge":
        label, _, settings = rest.partition(":")
        if not label:
            raise ValueError(f"--system {spec!r}: expected detforge:<label>[:key=value,...]")
        overrides = split_overrides(settings) if settings else []
        keys = [o.split("=", 1) for o in overrides]
        model = next((v for k, v in keys if k in ("model", "model.name")), None)
        if model is None and label in builtin_models:
            model = label
            overrides.insert(0, f"model={label}")
        return System("detforge", label, spec, model=model, overrides=overrides)
    raise ValueError(f"--system {spec!r}: expected peer:<model.yaml> or detforge:<label>[:k=v,...]")


# --------------------------------------------------------------------------- ground truth


def build_ground_truth(data_yaml: str) -> tuple[dict, list[str], int]:
    """COCO ground truth of the val split read by detforge (ids = index in the sorted val list,
    category_id = class + 1, boxes in original pixels), the class names and the train image
    count. No label cache is written."""
    spec = load_data_yaml(data_yaml)
    val = YoloDataset.from_spec(spec, "val", augment=False, cache=False)
    images, labels = [], []
    for i, path in enumerate(val.image_files):
        h0, w0 = val.shapes[i]
        images.append({"id": i, "file_name": Path(path).name, "height": int(h0), "width": int(w0)})
        boxes, classes = ground_truth_xyxy(val.labels[i], val.shapes[i])
        labels.append([[c, *b] for c, b in zip(classes.tolist(), boxes.tolist(), strict=True)])
    names = [img["file_name"] for img in images]
    if len(set(names)) != len(names):
        raise SystemExit("val images with the same file name: predictions cannot be matched")
    gt = coco_gt_from_labels(images, labels, spec.names)
    train = YoloDataset.from_spec(spec, "train", augment=False, cache=False)
    return gt, list(spec.names), len(train)


def data_files(data_yaml: str) -> set[str]:
    """Every file under the dataset folder (to show that no run wrote into it)."""
    root = Path(data_yaml).resolve().parent
    return {str(Path(d, f).relative_to(root)) for d, _, files in os.walk(root) for f in files}


# --------------------------------------------------------------------------- subprocesses


@dataclass
class Outcome:
    returncode: int | None
    seconds: float
    max_rss_mib: float  # largest single process of the tree (wait4), for information
    timed_out: bool


def stop_group(pid: int, grace: float = 30.0) -> tuple[int, Any]:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``grace`` seconds; reap ``pid``
    and return its wait status and resource usage."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def run_logged(cmd: list[str], log_path: Path, deadline: float | None, env: dict) -> Outcome:
    """Run ``cmd`` in its own session with stdout+stderr appended to ``log_path``.

    Past ``deadline`` (time.monotonic) its process group is stopped (SIGTERM, then SIGKILL); so it
    is when the driver itself is interrupted (Ctrl-C does not reach a separate session).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log_path.open("a") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        timed_out = False
        try:
            while True:
                done, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if done:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                    log.write("\n[train_compare] timeout: stopping the process group\n")
                    log.flush()
                    status, usage = stop_group(proc.pid)
                    break
                time.sleep(0.5)
        except BaseException:
            log.write("\n[train_compare] interrupted: stopping the process group\n")
            log.flush()
            stop_group(proc.pid, grace=10)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Outcome(
        proc.returncode, time.monotonic() - t0, round(usage.ru_maxrss / 1024, 1), timed_out
    )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def clean_env() -> tuple[dict[str, str], list[str]]:
    """The driver's environment without DETFORGE_* settings (the command must say everything)."""
    dropped = sorted(k for k in os.environ if k.startswith("DETFORGE_"))
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONUNBUFFERED"] = "1"
    return env, dropped


# --------------------------------------------------------------------------- systems


def peer_command(system: System, budget: Budget, out: Path, python: Path) -> list[str]:
    cmd = [
        str(python),
        str(PEER_SCRIPT),
        "--data", budget.data,
        "--model", str(system.model),
        "--imgsz", str(budget.imgsz),
        "--epochs", str(budget.epochs),
        "--batch", str(budget.batch),
        "--seed", str(budget.seed),
        "--workers", str(budget.workers),
        "--out", str(out / "peer" / system.label),
    ]  # fmt: skip
    if budget.fraction < 1:
        cmd += ["--fraction", str(budget.fraction)]
    return cmd + system.overrides


def detforge_commands(
    system: System, budget: Budget, out: Path, detforge: Path
) -> tuple[list[str], list[str]]:
    """``detforge train`` and ``detforge val`` (of last.pt) command lines."""
    cache = f"data.cache_dir={out / 'cache'}"
    train = [
        str(detforge), "train",
        f"data={budget.data}", f"imgsz={budget.imgsz}", f"epochs={budget.epochs}",
        f"batch={budget.batch}", f"seed={budget.seed}", f"workers={budget.workers}",
        f"project={out / 'runs'}", f"name={system.label}",
        "train.exist_ok=true", "train.progress=false",
        f"train.val_interval={budget.epochs}", "device=cpu", cache,
        *system.overrides,
    ]  # fmt: skip
    weights = out / "runs" / system.label / "weights" / "last.pt"
    val = [
        str(detforge), "val", f"weights={weights}",
        f"data={budget.data}", f"imgsz={system_imgsz(system, budget)}", f"batch={budget.batch}",
        f"workers={budget.workers}", "device=cpu", "amp=off", cache,
        f"project={out / 'scoring'}", f"name={system.label}",
        "train.exist_ok=true", "train.progress=false", "eval.save_json=true",
        *(f"{k}={v}" for k, v in VAL_SETTINGS.items()),
        *(o for o in system.overrides if o.startswith("eval.")),
    ]  # fmt: skip
    return train, val


def read_results_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def detforge_model_figures(weights: Path, sizes: list[int]) -> dict[str, Any]:
    """Parameters and GFLOPs (detforge's model_info: 2 x multiply-adds, unfused) of last.pt."""
    from detforge.api import Detector
    from detforge.models import model_info

    det = Detector.load(weights, device="cpu")
    figures = {f"gflops_{s}": round(model_info(det.model, s)["gflops"], 3) for s in sizes}
    return {"params": sum(p.numel() for p in det.model.parameters()), **figures}


def run_peer(system: System, budget: Budget, ctx: Context) -> dict:
    """Train and predict with the peer harness; the record of the run."""
    cmd = peer_command(system, budget, ctx.out, ctx.peer_python)
    shutil.rmtree(ctx.out / "peer" / system.label, ignore_errors=True)
    log = ctx.out / "logs" / f"{system.label}.train.log"
    log.unlink(missing_ok=True)
    record: dict[str, Any] = {"model": system.model, "commands": [shlex.join(cmd)]}
    record["logs"] = [str(log)]
    deadline = time.monotonic() + ctx.timeout if ctx.timeout else None
    res = run_logged(cmd, log, deadline, clean_env()[0])
    record["subprocess"] = {"train": asdict(res)}
    if res.returncode != 0:
        return fail(record, why(res), log)
    record.update(collect_peer(system, budget, ctx))
    return record


def collect_peer(system: System, budget: Budget, ctx: Context) -> dict:
    """Figures of a finished peer run, from its result.json."""
    peer_out = ctx.out / "peer" / system.label
    r = load_json(peer_out / "result.json")
    (peer_out / "predictions.json").stat()  # must exist
    figures = {
        "status": "ok",
        "model": system.model,
        "predictions": str(peer_out / "predictions.json"),
        "train_images": r["train_images"],
        "epochs_done": r["epochs"],
        "train_seconds": r["train_seconds"],
        "train_images_per_s": r["train_images_per_s"],
        "epoch_seconds": r["epoch_seconds"],
        "train_wall_seconds": r["train_wall_seconds"],
        "peak_mem_mib": r["peak_rss_mib"]["self"],
        "peak_mem_note": "peer main process ru_maxrss (the peer forces 0 loader workers on CPU: "
        "loading included)",
        "params": r["params"],
        "gflops": r["gflops"],
        "gflops_640": r["gflops_640"],
        "workers_used": r["workers_used"],
        "versions": {
            "ultralytics": r["ultralytics_version"],
            "torch": r["torch_version"],
            "torch_threads": r["torch_threads"],
            "python": r["python_version"],
        },
        "peer_printed_metrics_not_comparable": r["peer_printed_metrics_not_comparable"],
        "new_cache_files_in_source": r["new_cache_files_in_source"],
        "exact_command": r["command"],
        "warnings": [],
    }
    if r["new_cache_files_in_source"]:
        figures["warnings"].append(f"peer wrote into the data: {r['new_cache_files_in_source']}")
    if r["epochs"] != budget.epochs:
        figures["warnings"].append(f"the peer trained {r['epochs']} epochs")
    return figures


def run_detforge(system: System, budget: Budget, ctx: Context) -> dict:
    """``detforge train`` then ``detforge val`` of last.pt; the record of the run.

    With ``ctx.resume``, a training that was interrupted (its ``last.pt`` exists and it was
    started by the same train command) continues from ``last.pt`` instead of starting over."""
    train_cmd, val_cmd = detforge_commands(system, budget, ctx.out, ctx.detforge)
    run_dir = ctx.out / "runs" / system.label
    last = run_dir / "weights" / "last.pt"
    logs = [ctx.out / "logs" / f"{system.label}.{step}.log" for step in ("train", "val")]
    stamp = ctx.out / "logs" / f"{system.label}.train.cmd"
    resume = ctx.resume and last.is_file() and stamp.is_file()
    resume = resume and stamp.read_text() == shlex.join(train_cmd)
    # exist_ok=true would append to an old results.csv: start from an empty run folder
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
        for log in logs:
            log.unlink(missing_ok=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stamp, shlex.join(train_cmd))
    shutil.rmtree(ctx.out / "scoring" / system.label, ignore_errors=True)
    logs[1].unlink(missing_ok=True)
    record: dict[str, Any] = {
        "model": system.model,
        "commands": [shlex.join(train_cmd), shlex.join(val_cmd)],
        "logs": [str(p) for p in logs],
        "subprocess": {},
    }
    deadline = time.monotonic() + ctx.timeout if ctx.timeout else None
    env, dropped = clean_env()
    if dropped:
        record["dropped_environment"] = dropped
    if resume:
        print(f"[{system.label}] continuing the interrupted training from {last}", flush=True)
    res = run_logged(train_cmd + ([f"resume={last}"] if resume else []), logs[0], deadline, env)
    record["subprocess"]["train"] = asdict(res)
    if res.returncode != 0:
        return fail(record, why(res), logs[0])
    res = run_logged(val_cmd, logs[1], deadline, env)
    record["subprocess"]["val"] = asdict(res)
    if res.returncode != 0:
        return fail(record, f"detforge val: {why(res)}", logs[1])
    # the wall time of a training in pieces is unknown: the interrupted pieces left no record
    record["train_wall_seconds"] = (
        None if resume else round(record["subprocess"]["train"]["seconds"], 3)
    )
    record.update(collect_detforge(system, budget, ctx))
    return record


RESUMED_RE = re.compile(r"resumed from .* at epoch (\d+), batch (\d+)")


def partial_epochs(train_log: str) -> list[int]:
    """1-based epochs a resume entered mid-way (their epoch_time covers only the resumed part)."""
    return sorted({int(e) for e, b in RESUMED_RE.findall(train_log) if int(b) > 0})


def collect_detforge(system: System, budget: Budget, ctx: Context) -> dict:
    """Figures of a finished detforge system, from its run folder, val folder and train log."""
    run_dir = ctx.out / "runs" / system.label
    val_dir = ctx.out / "scoring" / system.label
    weights = run_dir / "weights" / "last.pt"
    rows = read_results_csv(run_dir / "results.csv")
    epoch_seconds = [float(r["epoch_time"]) for r in rows]
    train_images = ctx.train_images  # the trainer iterates every train image once per epoch
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    train_log = (ctx.out / "logs" / f"{system.label}.train.log").read_text(errors="replace")
    printed = re.findall(r"\(([\d.]+) train images/s\)", train_log)
    partial = partial_epochs(train_log)
    # throughput over the epochs that ran whole in one process
    whole = [s for i, s in enumerate(epoch_seconds, 1) if i not in partial]
    train_seconds = sum(whole)
    (val_dir / "val_predictions.json").stat()  # must exist
    imgsz = system_imgsz(system, budget)
    model = detforge_model_figures(weights, sorted({imgsz, 640}))
    figures = {
        "status": "ok",
        "model": config["model"]["name"],
        "imgsz": imgsz,
        "predictions": str(val_dir / "val_predictions.json"),
        "predictions_gt": str(val_dir / "val_gt.json"),
        "train_images": train_images,
        "epochs_done": len(rows),
        "train_seconds": round(train_seconds, 3),
        "train_images_per_s": round(train_images * len(whole) / train_seconds, 3),
        "trainer_printed_images_per_s": float(printed[-1]) if printed else None,
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "resumed_mid_epoch": partial,
        "peak_mem_mib": round(mb_to_mib(max(float(r["peak_mem_mb"]) for r in rows)), 1),
        "peak_mem_note": "detforge main process ru_maxrss (results.csv peak_mem_mb, 10^6 bytes, "
        "converted to MiB; its "
        f"{budget.workers} loader worker processes are not included)",
        "params": model["params"],
        "gflops": model[f"gflops_{imgsz}"],
        "gflops_640": model["gflops_640"],
        "trainer_final_metrics": {
            k.removeprefix("metrics/"): float(v)
            for k, v in rows[-1].items()
            if k.startswith("metrics/") and v != ""
        },
        "workers_used": budget.workers,
        "resolved_config": str(run_dir / "config.yaml"),
        "exact_command": shlex.join(detforge_commands(system, budget, ctx.out, ctx.detforge)[0]),
        "warnings": [],
    }
    if len(rows) != budget.epochs:
        figures["warnings"].append(f"results.csv has {len(rows)} rows, not {budget.epochs}")
    return figures


def why(res: Outcome) -> str:
    return "timeout" if res.timed_out else f"exit status {res.returncode}"


def fail(record: dict, reason: str, log: Path) -> dict:
    record.update(status="failed", reason=reason, log_tail=log_tail(log))
    return record


def reuse(
    system: System, budget: Budget, ctx: Context, saved: Path, commands: list[str]
) -> dict | None:
    """The saved record of a system that finished with the same commands, its figures read
    again from its outputs; None if there is none (or its outputs cannot be read)."""
    if not saved.is_file():
        return None
    record = load_json(saved)
    if record.get("status") != "ok" or record.get("commands") != commands:
        return None
    collect = collect_peer if system.kind == "peer" else collect_detforge
    try:
        record.update(collect(system, budget, ctx))
    except Exception as e:
        print(f"[{system.label}] cannot reuse {saved}: {e!r}", flush=True)
        return None
    record["reused"] = True
    return record


# --------------------------------------------------------------------------- scoring


def peer_results(path: Path, gt: dict) -> list[dict]:
    """Neutral peer predictions (file_name, 0-based class) -> COCO results on ``gt``'s ids."""
    image_id = {img["file_name"]: img["id"] for img in gt["images"]}
    preds = load_json(path)
    unknown = sorted({p["file_name"] for p in preds} - set(image_id))
    if unknown:
        raise ValueError(f"{len(unknown)} predicted file names not in the val split: {unknown[:3]}")
    return [
        {
            "image_id": image_id[p["file_name"]],
            "category_id": int(p["class"]) + 1,
            "bbox": [float(v) for v in p["bbox"]],
            "score": float(p["score"]),
        }
        for p in preds
    ]


def detforge_results(pred_path: Path, gt_path: Path, gt: dict) -> list[dict]:
    """detforge's exported COCO predictions -> COCO results on ``gt``'s ids, by file name."""
    own_gt = load_json(gt_path)
    file_of = {img["id"]: img["file_name"] for img in own_gt["images"]}
    image_id = {img["file_name"]: img["id"] for img in gt["images"]}
    if set(file_of.values()) != set(image_id):
        raise ValueError(f"{gt_path} lists other val images than the driver's ground truth")
    own_names = {c["id"]: c["name"] for c in own_gt["categories"]}
    names = {c["id"]: c["name"] for c in gt["categories"]}
    if own_names != names:
        raise ValueError(f"{gt_path} has other categories than the driver's ground truth")
    return [
        {
            "image_id": image_id[file_of[p["image_id"]]],
            "category_id": int(p["category_id"]),
            "bbox": [float(v) for v in p["bbox"]],
            "score": float(p["score"]),
        }
        for p in load_json(pred_path)
    ]


def pycocotools_stats(gt: dict, results: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


def score(gt: dict, results: list[dict], names: list[str]) -> dict:
    """detforge's evaluator and pycocotools on the same ground truth and predictions."""
    res = evaluate_coco(gt, results)
    stats = {k: float(res.stats[k]) for k in STAT_KEYS}
    per_class = {
        names[int(cat) - 1]: {k: float(v) for k, v in pc.items()}
        for cat, pc in sorted(res.per_class.items())
    }
    out: dict[str, Any] = {"num_predictions": len(results), "stats": stats, "per_class": per_class}
    if not results:  # pycocotools' loadRes cannot take an empty list
        out["cross_check"] = {"passed": None, "note": "no predictions: pycocotools skipped"}
        return out
    ref = dict(zip(STAT_KEYS, pycocotools_stats(gt, results), strict=True))
    diff = max(abs(stats[k] - ref[k]) for k in STAT_KEYS)
    out["stats_pycocotools"] = ref
    out["cross_check"] = {"passed": diff <= CROSS_CHECK_TOL, "max_abs_diff": diff}
    return out


def score_system(system: System, record: dict, gt: dict, names: list[str]) -> None:
    """Map a finished system's predictions to ``gt`` and score them (``record["scores"]``); a
    file that cannot be read or matched marks the system failed."""
    try:
        if system.kind == "peer":
            preds = peer_results(Path(record["predictions"]), gt)
        else:
            preds = detforge_results(
                Path(record["predictions"]), Path(record["predictions_gt"]), gt
            )
        record["scores"] = score(gt, preds, names)
    except Exception as e:
        record.update(status="failed", reason=f"scoring: {e!r}")


# --------------------------------------------------------------------------- report


def ratios(records: list[dict]) -> dict[str, dict]:
    """Each detforge system against the first peer system (None where undefined)."""
    ref = next((r for r in records if r["kind"] == "peer"), None)
    if ref is None:
        return {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    out = {}
    for r in records:
        if r["kind"] != "detforge":
            continue
        if r["status"] != "ok" or ref["status"] != "ok":
            out[r["label"]] = {"against": ref["label"], "note": "a system failed"}
            continue
        s, p = r["scores"]["stats"], ref["scores"]["stats"]
        out[r["label"]] = {
            "against": ref["label"],
            "map50_95": ratio(s["map50_95"], p["map50_95"]),
            "map50": ratio(s["map50"], p["map50"]),
            "map_small": ratio(s["map_small"], p["map_small"]),
            "train_images_per_s": ratio(r["train_images_per_s"], ref["train_images_per_s"]),
        }
    return out


def markdown(report: dict) -> str:
    b = report["budget"]
    smoke = f", peer on fraction {b['fraction']} of train (SMOKE)" if b["fraction"] < 1 else ""
    lines = [
        f"Training benchmark, {Path(b['data']).parent.name}: imgsz {b['imgsz']}, epochs "
        f"{b['epochs']}, batch {b['batch']}, seed {b['seed']}, workers {b['workers']}{smoke}; "
        f"{report['machine']['cpu_count']} CPU cores ({report['machine']['cpu']}), "
        f"scored by detforge's evaluator = pycocotools on the val split "
        f"({report['ground_truth']['images']} images, {report['ground_truth']['boxes']} boxes).",
        "",
        "| system | model | train img | mAP50-95 | mAP50 | mAP75 | APsmall | train img/s | "
        "train s | peak MiB | params M | GFLOPs | x mAP50-95 | x mAP50 | x APsmall | x img/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rat = report["ratios"]
    for r in report["systems"]:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r.get('model', '')} | FAILED: {r['reason']} |")
            continue
        s = r["scores"]["stats"]
        x = rat.get(r["label"], {})
        if r["label"] == report["ratios_reference"]:
            cells = ["1 (ref)"] * 4
        else:
            keys = ("map50_95", "map50", "map_small", "train_images_per_s")
            cells = [f"{x[k]:.3f}" if x.get(k) is not None else "" for k in keys]
        size = r.get("imgsz", b["imgsz"])
        model = r["model"] if size == b["imgsz"] else f"{r['model']} (imgsz {size})"
        lines.append(
            f"| {r['label']} | {model} | {r['train_images']} | {s['map50_95']:.4f} | "
            f"{s['map50']:.4f} | {s['map75']:.4f} | {s['map_small']:.4f} | "
            f"{r['train_images_per_s']:.2f} | {r['train_seconds']:.0f} | "
            f"{r['peak_mem_mib']:.0f} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "```", report["command"], "```"]
    return "\n".join(lines)


def versions() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    import torch

    return {
        "detforge": version("detforge"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_uncommitted_in_src": git("status", "--porcelain", "--", "src").splitlines(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pycocotools": version("pycocotools"),
        "python": platform.python_version(),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform()}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Full benchmark: see the module docstring or bench/README.md.",
    )
    p.add_argument("--data", required=True, help="YOLO data.yaml")
    p.add_argument(
        "--system",
        action="append",
        required=True,
        help="peer:<model.yaml> or detforge:<label>[:key=value,...] (repeat; run in this order)",
    )
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="fraction of train images for the PEER only (smoke runs; detforge has no such option)",
    )
    p.add_argument("--out", type=Path, help="output folder (default bench/results/<data>_<time>)")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="reuse systems that finished in --out with the same commands and continue a "
        "detforge training they interrupted from its last.pt (needs an explicit --out; figures "
        "are read again and scoring is redone)",
    )
    p.add_argument("--timeout", type=float, default=0, help="seconds per system (0: none)")
    p.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    p.add_argument("--detforge", type=Path, default=Path(sys.executable).parent / "detforge")
    args = p.parse_args(argv)
    if not 0 < args.fraction <= 1:
        p.error("--fraction must be in (0, 1]")
    return args


def exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends the driver like Ctrl-C: the running system's process group is stopped too."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    raw_argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([sys.executable, sys.argv[0], *raw_argv])
    data = str(Path(args.data).resolve())
    budget = Budget(
        data, args.imgsz, args.epochs, args.batch, args.seed, args.workers, args.fraction
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or REPO / "bench" / "results" / f"{Path(data).parent.name}_{stamp}").resolve()
    for forbidden in (SHARED.resolve(), Path(data).parent):
        if out == forbidden or forbidden in out.parents:
            raise SystemExit(f"--out {out} is inside {forbidden}: choose another folder")

    from detforge.models import available_models

    builtin = set(available_models())
    try:
        systems = [parse_system(s, builtin) for s in args.system]
    except ValueError as e:
        raise SystemExit(str(e)) from None
    labels = [s.label for s in systems]
    for label in labels:
        if not LABEL_RE.match(label) or labels.count(label) > 1:
            raise SystemExit(f"system label {label!r} must be unique and [A-Za-z0-9._-] only")

    out.mkdir(parents=True, exist_ok=True)
    files_before = data_files(data)
    gt, names, train_images = build_ground_truth(data)
    ctx = Context(
        out, args.peer_python, args.detforge, args.timeout, train_images, args.skip_existing
    )
    write_json_atomic(out / "ground_truth.json", gt)
    print(
        f"ground truth: {len(gt['images'])} val images, {len(gt['annotations'])} boxes; "
        f"{train_images} train images -> {out}",
        flush=True,
    )

    records = []
    for system in systems:
        if system.kind == "peer":
            cmds = [peer_command(system, budget, out, ctx.peer_python)]
        else:
            cmds = list(detforge_commands(system, budget, out, ctx.detforge))
        commands = [shlex.join(c) for c in cmds]
        saved = out / "systems" / f"{system.label}.json"
        record = reuse(system, budget, ctx, saved, commands) if args.skip_existing else None
        if record is not None:
            print(f"[{system.label}] reusing {saved}", flush=True)
        else:
            print(f"[{system.label}] {' && '.join(commands)}", flush=True)
            t0 = time.monotonic()
            runner = run_peer if system.kind == "peer" else run_detforge
            try:
                record = runner(system, budget, ctx)
            except Exception as e:  # a broken output file must not stop the other systems
                record = {"model": system.model, "commands": commands, "status": "failed"}
                record["reason"] = repr(e)
            record["wall_seconds"] = round(time.monotonic() - t0, 1)
            record.update(kind=system.kind, label=system.label, spec=system.spec)
            write_json_atomic(saved, record, indent=2)
        if record["status"] == "ok":
            score_system(system, record, gt, names)
        if record["status"] == "ok":
            s = record["scores"]
            print(
                f"[{system.label}] mAP50-95 {s['stats']['map50_95']:.4f} mAP50 "
                f"{s['stats']['map50']:.4f} APsmall {s['stats']['map_small']:.4f}, "
                f"{record['train_images_per_s']:.2f} train images/s, "
                f"pycocotools cross-check {s['cross_check']}",
                flush=True,
            )
        else:
            print(f"[{system.label}] FAILED ({record['reason']}):\n{record.get('log_tail', '')}")
        for warning in record.get("warnings", []):
            print(f"[{system.label}] warning: {warning}", flush=True)
        records.append(record)

    files_after = data_files(data)
    report = {
        "command": command,
        "budget": asdict(budget),
        "protocol": {
            "detforge_train_defaults": "device=cpu train.val_interval=<epochs>, default amp",
            "train_seconds": "sum of per-epoch training timers (no validation, no checkpoints)",
            "train_images_per_s": "train_images x epochs / train_seconds",
            "predictions": "last-epoch (EMA) weights, fp32, conf 0.001, NMS IoU 0.7, max_det 300",
            "scoring": "detforge evaluate_coco on ground_truth.json; pycocotools cross-check "
            f"within {CROSS_CHECK_TOL}",
            "ratios": "detforge system / first peer system",
        },
        "ground_truth": {
            "path": str(out / "ground_truth.json"),
            "images": len(gt["images"]),
            "boxes": len(gt["annotations"]),
            "names": names,
            "train_images": train_images,
        },
        "systems": records,
        "ratios_reference": next((r["label"] for r in records if r["kind"] == "peer"), None),
        "ratios": ratios(records),
        "versions": versions(),
        "machine": machine(),
        "data_folder_changes": {
            "new": sorted(files_after - files_before),
            "removed": sorted(files_before - files_after),
        },
    }
    write_json_atomic(out / "results.json", report, indent=2)
    table = markdown(report)
    (out / "table.md").write_text(table + "\n")
    print("\n" + table + f"\n\nresults: {out / 'results.json'}")

    ok = all(r["status"] == "ok" for r in records)
    checked = all(
        r["scores"]["cross_check"]["passed"] is not False for r in records if r["status"] == "ok"
    )
    if not checked:
        print("pycocotools cross-check FAILED (see results.json)", file=sys.stderr)
    if report["data_folder_changes"]["new"] or report["data_folder_changes"]["removed"]:
        print(f"the data folder changed: {report['data_folder_changes']}", file=sys.stderr)
    return 0 if ok and checked else 1


if __name__ == "__main__":
    raise SystemExit(main())
