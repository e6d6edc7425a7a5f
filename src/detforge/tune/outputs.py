"""What a study leaves in its folder: ``trials.csv``, ``best.yaml``, a progress line per trial and
Optuna's matplotlib plots. Everything is read back from the study's storage, so any worker can
write it and the last write holds every trial."""

from __future__ import annotations

import csv
import io
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig, config_to_dict
from ..utils.atomic import write_text_atomic
from .space import Space
from .storage import retries, silent_reason, superseded

__all__ = ["trial_rows", "write_trials_csv", "best_trial", "write_best_yaml", "progress_line",
           "write_plots"]  # fmt: skip

log = logging.getLogger("detforge")

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running",
          "WAITING": "waiting"}  # fmt: skip
COLUMNS = ["trial", "state", "fitness", "epochs", "seconds", "pruned_at"]


def _result(t) -> Mapping[str, Any]:
    return t.user_attrs.get("result") or {}


def trial_rows(trials: list, space: Space) -> list[dict[str, Any]]:
    """One row per trial: number, state, fitness, epochs run, seconds, pruned-at epoch, every
    parameter of the space (empty where a condition left it out), run folder and reason."""
    rows, again = [], retries(trials)
    for t in trials:
        r = _result(t)
        fitness = r.get("fitness")
        row = {
            "trial": t.number,
            "state": STATES.get(t.state.name, t.state.name.lower()),
            "fitness": "" if fitness is None else f"{fitness:.5f}",
            "epochs": r.get("epochs", ""),
            "seconds": f"{r['seconds']:.1f}" if "seconds" in r else "",
            "pruned_at": r.get("pruned_at") or "",
        }
        row.update({p.key: t.params.get(p.key, "") for p in space.params})
        row["run_dir"] = r.get("run_dir", "")
        silent = t.state.name == "FAIL" and not r  # failed by an RDB storage's heartbeat check
        row["reason"] = silent_reason(t, again) if silent else r.get("reason", "")
        rows.append(row)
    return rows


def write_trials_csv(path: Path, trials: list, space: Space) -> None:
    fields = [*COLUMNS, *(p.key for p in space.params), "run_dir", "reason"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(trial_rows(trials, space))
    write_text_atomic(path, buf.getvalue())


def best_trial(trials: list):
    """The complete trial of highest fitness (the earliest on a tie), or None."""
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _non_default(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """The sections and keys of ``cfg`` that differ from the schema's defaults."""
    here, default = config_to_dict(cfg), config_to_dict(RunConfig())
    out: dict[str, dict[str, Any]] = {}
    for sec, values in here.items():
        diff = {k: v for k, v in values.items() if default[sec][k] != v}
        if diff:
            out[sec] = diff
    return out


def write_best_yaml(path: Path, base: RunConfig, trial, study_name: str) -> None:
    """A settings file for ``detforge train cfg=best.yaml``: the study's base settings (those
    that differ from the defaults, at the full epoch budget) with the best trial's params."""
    tree = _non_default(base)
    for key, value in trial.params.items():
        sec, name = key.split(".", 1)
        tree.setdefault(sec, {})[name] = value
    head = (
        f"# best trial of study {study_name}: trial {trial.number}, fitness {trial.value:.5f}\n"
        f"# ({_result(trial).get('run_dir', '')}); run it with: detforge train cfg={path}\n"
    )
    write_text_atomic(path, head + yaml.safe_dump(tree, sort_keys=False))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def progress_line(trial, trials: list, total: int) -> str:
    """``trial 3/9 pruned at epoch 1: optim.lr0=0.01 ... fitness 0.12345 | best 0.2 (trial 1)``"""
    r = _result(trial)
    state = STATES.get(trial.state.name, trial.state.name.lower())
    if r.get("pruned_at"):
        state = f"pruned at epoch {r['pruned_at']}"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    fitness = r.get("fitness")
    fit = f"fitness {fitness:.5f}" if fitness is not None else r.get("reason", "")
    best = best_trial(trials)
    best_text = f"best {best.value:.5f} (trial {best.number})" if best else "no complete trial yet"
    count = f"({len(_finished(trials))}/{total})"
    return f"trial {trial.number} {count} {state}: {params}: {fit} | {best_text}"


def _finished(trials: list) -> list:
    """Finished trials, without failed ones whose parameters were queued again."""
    again = superseded(trials)
    return [
        t for t in trials
        if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and t.number not in again
    ]  # fmt: skip


def write_plots(study, folder: Path) -> list[Path]:
    """Optuna's matplotlib plots as PNGs (history, importances, parallel coordinates, slices);
    a plot that cannot be drawn (a missing package, too few complete trials) is skipped with a
    log line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    plots = {
        "history": ov.plot_optimization_history,
        "importances": ov.plot_param_importances,
        "parallel": ov.plot_parallel_coordinate,
        "slices": ov.plot_slice,
    }
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    written = []
    # matplotlib's notes on categorical axes and Optuna's on equal importances are not ours
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    for name, plot in plots.items():
        if len(complete) < 2:
            log.info("plot %s skipped: it needs 2 complete trials, the study has %d", name,
                     len(complete))  # fmt: skip
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
        except ImportError as e:  # Optuna 4's default importance evaluator needs scikit-learn
            log.info("plot %s skipped: %s", name, e)
            continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
        out = folder / f"{name}.png"
        tmp = folder / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        tmp.replace(out)  # atomic: a reader sees the old plot or the new one
        plt.close(fig)
        written.append(out)
    return written
