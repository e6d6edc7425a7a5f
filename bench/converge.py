"""Time-to-accuracy: detforge and the peer trained to a long budget, scored every few epochs.

Both systems train from scratch with the same data, image size, batch, seed and epochs, keeping
their weights every ``--every`` epochs; afterwards every kept checkpoint is run through its own
system's val (fp32, conf 0.001, NMS IoU 0.7, max 300 detections) and all predictions are scored
by the same evaluator (detforge's ``evaluate_coco``, cross-checked with pycocotools) against the
same ground truth. Each point carries the cumulative training seconds up to that epoch (the
per-epoch training timers of ``bench/train_compare.py``: validation, checkpoints and scoring
excluded), so the curves compare accuracy against training wall-clock.

The issue-12 run (from the repository root, on a quiet machine: about 1.5 to 2 hours on 2 cores,
so in the background; ``--skip-existing`` with the same ``--out`` reuses a finished system):

    nohup .venv/bin/python bench/converge.py --data ../shared/data/hituav/data.yaml \\
        --imgsz 320 --epochs 100 --every 5 --batch 16 --seed 0 \\
        --out bench/results/hituav_converge_e100 > converge.log 2>&1 &

Smoke run (a few minutes): ``--epochs 2 --every 1 --fraction 0.1 --out /tmp/converge_smoke``.

The peer trains on its default torch thread count, one less than the CPU count (1 thread on a
2-core machine), detforge on torch's default (one per core); ``--peer-threads 2`` gives the peer
both cores (a separate system, ``peer-<model>-2threads``, so ``--skip-existing`` keeps both).

Any YOLO data.yaml works. Outputs in ``--out``: results.json (curves, ratios, commands,
versions, machine), table.md, curve.png and curve.svg (mAP50-95 against training seconds),
plus train_compare's folders (runs/, scoring/, peer/, logs/, systems/).

Ratios: final mAP50-95 (ours / peer's, at the last epoch) and, with the peer's final mAP50-95 as
the target, the cumulative training seconds at which each system's first checkpoint reaches it
(ours / peer's). Checkpoint granularity: no interpolation between points.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_compare as tc  # noqa: E402

Point = dict[str, float]


def first_reach(curve: list[Point], target: float) -> Point | None:
    """The first point of ``curve`` (sorted by epoch) whose mAP50-95 is at least ``target``."""
    return next((p for p in curve if p["map50_95"] >= target), None)


def summarize(ours: list[Point], peer: list[Point]) -> dict[str, Any]:
    """Final figures and the two ratios of the issue (None where a curve never reaches)."""
    target = peer[-1]["map50_95"]
    reach_ours, reach_peer = first_reach(ours, target), first_reach(peer, target)
    final_ratio = ours[-1]["map50_95"] / target if target else None
    time_ratio = (
        reach_ours["train_seconds"] / reach_peer["train_seconds"]
        if reach_ours and reach_peer and reach_peer["train_seconds"]
        else None
    )
    return {
        "peer_final_map50_95": target,
        "ours_final_map50_95": ours[-1]["map50_95"],
        "final_map50_95_ratio": final_ratio,
        "ours_reaches_peer_final": reach_ours,
        "peer_reaches_own_final": reach_peer,
        "time_to_peer_final_ratio": time_ratio,
    }


def detforge_curve(label: str, budget: tc.Budget, ctx: tc.Context, every: int, gt: dict,
                   names: list[str]) -> tuple[list[Point], list[str]]:  # fmt: skip
    """Val and score every kept checkpoint of the detforge run ``label``."""
    run = ctx.out / "runs" / label
    rows = tc.read_results_csv(run / "results.csv")
    seconds = [float(r["epoch_time"]) for r in rows]
    epochs = [e for e in range(every, len(rows) + 1, every)]
    commands, curve = [], []
    for epoch in epochs:
        weights = run / "weights" / f"epoch{epoch}.pt"
        if epoch == len(rows) and not weights.exists():
            weights = run / "weights" / "last.pt"
        name = f"{label}-epoch{epoch}"
        val = tc.detforge_commands(tc.System("detforge", label, ""), budget, ctx.out,
                                   ctx.detforge)[1]  # fmt: skip
        val = [f"weights={weights}" if a.startswith("weights=") else a for a in val]
        val = [f"name={name}" if a.startswith("name=") else a for a in val]
        shutil.rmtree(ctx.out / "scoring" / name, ignore_errors=True)
        res = tc.run_logged(val, ctx.out / "logs" / f"{name}.val.log", None, tc.clean_env()[0])
        if res.returncode != 0:
            raise SystemExit(f"detforge val of {weights} failed: see logs/{name}.val.log")
        scoring = ctx.out / "scoring" / name
        preds = tc.detforge_results(scoring / "val_predictions.json", scoring / "val_gt.json", gt)
        curve.append(point(epoch, sum(seconds[:epoch]), tc.score(gt, preds, names)))
        commands.append(shlex.join(val))
    return curve, commands


def peer_curve(label: str, ctx: tc.Context, gt: dict, names: list[str]) -> list[Point]:
    """Score the peer's kept checkpoints (its harness already ran its val on each)."""
    r = tc.load_json(ctx.out / "peer" / label / "result.json")
    curve = []
    for epoch, c in sorted(r["checkpoints"].items(), key=lambda kv: int(kv[0])):
        preds = tc.peer_results(Path(c["predictions"]), gt)
        curve.append(point(int(epoch), c["train_seconds_cumulative"], tc.score(gt, preds, names)))
    return curve


def point(epoch: int, seconds: float, scores: dict) -> Point:
    if scores["cross_check"]["passed"] is False:
        raise SystemExit(f"epoch {epoch}: pycocotools cross-check failed {scores['cross_check']}")
    s = scores["stats"]
    return {"epoch": epoch, "train_seconds": round(seconds, 3), "map50_95": s["map50_95"],
            "map50": s["map50"], "map_small": s["map_small"]}  # fmt: skip


def plot(curves: dict[str, list[Point]], title: str, out: Path) -> None:
    """mAP50-95 against cumulative training minutes, one line per system, as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, curve in curves.items():
        ax.plot([p["train_seconds"] / 60 for p in curve], [p["map50_95"] for p in curve],
                marker="o", markersize=3, label=label)  # fmt: skip
    ax.set_xlabel("cumulative training time (min)")
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"curve.{suffix}", dpi=120, metadata={"Date": None} if suffix == "svg"
                    else None)  # fmt: skip
    plt.close(fig)


def table(curves: dict[str, list[Point]], summary: dict[str, Any]) -> str:
    labels = list(curves)
    lines = ["| epoch | " + " | ".join(f"{lb} mAP50-95 | {lb} train min" for lb in labels) + " |",
             "|---:|" + "---:|---:|" * len(labels)]  # fmt: skip
    by_epoch = {lb: {p["epoch"]: p for p in c} for lb, c in curves.items()}
    for epoch in sorted(set().union(*(set(b) for b in by_epoch.values()))):
        cells = []
        for lb in labels:
            p = by_epoch[lb].get(epoch)
            cells += [f"{p['map50_95']:.4f}", f"{p['train_seconds'] / 60:.1f}"] if p else ["", ""]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    final, when = summary["final_map50_95_ratio"], summary["time_to_peer_final_ratio"]
    lines += ["", f"final mAP50-95 ours / peer's: {'n/a' if final is None else f'{final:.3f}'}; "
              f"training time to the peer's final mAP50-95, ours / peer's: "
              f"{'n/a (never reached)' if when is None else f'{when:.3f}'}"]  # fmt: skip
    return "\n".join(lines)


def peer_system(args: argparse.Namespace) -> tc.System:
    """The peer with its checkpoints kept every ``--every`` epochs and, with ``--peer-threads``,
    that many torch threads (labelled so: it is not the peer's out-of-the-box setting)."""
    spec = f"peer:{args.peer}"
    if args.peer_threads:
        stem = Path(args.peer).name.removesuffix(".yaml").removesuffix(".yml")
        spec += f":label=peer-{stem}-{args.peer_threads}threads,threads={args.peer_threads}"
    peer = tc.parse_system(spec, set())
    return replace(peer, overrides=[*peer.overrides, f"--save-every={args.every}"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="YOLO data.yaml")
    p.add_argument("--ours", default="yolo-n", help="detforge model (built-in name)")
    p.add_argument("--peer", default="yolo11n.yaml", help="peer model yaml")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--every", type=int, default=5, help="score the weights every N epochs")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fraction", type=float, default=1.0, help="PEER only, smoke runs")
    p.add_argument("--peer-threads", type=int, default=0,
                   help="torch threads of the peer's training (0: its own default, which is one "
                   "less than the CPU count)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--skip-existing", action="store_true", help="reuse finished trainings")
    p.add_argument("--peer-python", type=Path, default=tc.DEFAULT_PEER_PYTHON)
    p.add_argument("--detforge", type=Path, default=Path(sys.executable).parent / "detforge")
    args = p.parse_args(argv)
    if args.peer_threads < 0:
        p.error("--peer-threads must be 0 (the peer's default) or positive")
    if args.every < 1 or args.epochs % args.every:
        p.error("--every must divide --epochs (the last point is the final epoch)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    data = str(Path(args.data).resolve())
    budget = tc.Budget(data, args.imgsz, args.epochs, args.batch, args.seed, args.workers,
                       args.fraction)  # fmt: skip
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    gt, names, train_images = tc.build_ground_truth(data)
    ctx = tc.Context(out, args.peer_python, args.detforge, 0, train_images)
    from detforge.models import available_models

    ours = tc.parse_system(f"detforge:{args.ours}", set(available_models()))
    ours = replace(ours, overrides=[*ours.overrides, f"train.save_period={args.every}"])
    peer = peer_system(args)
    records = {}
    for system in (peer, ours):
        cmds = ([tc.peer_command(system, budget, out, ctx.peer_python)] if system.kind == "peer"
                else list(tc.detforge_commands(system, budget, out, ctx.detforge)))  # fmt: skip
        commands = [shlex.join(c) for c in cmds]
        saved = out / "systems" / f"{system.label}.json"
        record = tc.reuse(system, budget, ctx, saved, commands) if args.skip_existing else None
        if record is None:
            print(f"[{system.label}] {' && '.join(commands)}", flush=True)
            t0 = time.monotonic()
            run = tc.run_peer if system.kind == "peer" else tc.run_detforge
            record = run(system, budget, ctx)
            record["wall_seconds"] = round(time.monotonic() - t0, 1)
            record.update(kind=system.kind, label=system.label, spec=system.spec)
            tc.write_json_atomic(saved, record, indent=2)
        if record["status"] != "ok":
            raise SystemExit(f"[{system.label}] failed: {record['reason']}\n"
                             f"{record.get('log_tail', '')}")  # fmt: skip
        records[system.label] = record
    curves = {peer.label: peer_curve(peer.label, ctx, gt, names)}
    curves[ours.label], val_commands = detforge_curve(ours.label, budget, ctx, args.every, gt,
                                                      names)  # fmt: skip
    summary = summarize(curves[ours.label], curves[peer.label])
    title = (f"{Path(data).parent.name}, imgsz {args.imgsz}, batch {args.batch}, seed "
             f"{args.seed}, {args.epochs} epochs, scored every {args.every}")  # fmt: skip
    plot(curves, title, out)
    report = {
        "command": command, "budget": asdict(budget), "every": args.every, "curves": curves,
        "summary": summary, "systems": records, "val_commands": val_commands,
        "versions": tc.versions(), "machine": tc.machine(),
    }  # fmt: skip
    tc.write_json_atomic(out / "results.json", report, indent=2)
    text = f"{title}\n\n{table(curves, summary)}\n\n```\n{command}\n```\n"
    (out / "table.md").write_text(text)
    print("\n" + text + f"\nresults: {out / 'results.json'}, plot: {out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
