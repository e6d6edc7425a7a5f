"""``runs/tune/<study>/report.html``: the study on one page that opens offline, built with the
run report's pieces (:func:`detforge.report.html_report.page`, ``table``, ``figure``: the same
Content-Security-Policy, inline style, images as data URIs). Sections: the counts, the best trial
and its parameters, the final run's metrics (``final=true``), the plots the study folder holds,
and every trial. Rewritten after each trial, like ``trials.csv``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..report.html_report import figure, page, table
from ..utils.atomic import write_text_atomic
from .final import FINAL_METRICS
from .outputs import best_trial, trial_rows
from .space import Space
from .storage import superseded

__all__ = ["write_study_report", "PLOTS"]

PLOTS = (
    ("history.png", "Optimization history"),
    ("importances.png", "Parameter importances"),
    ("parallel.png", "Parallel coordinates"),
    ("slices.png", "Slices"),
)


def _link(folder: Path, rel: str, text: str) -> str:
    """A relative link to a file of the study folder, when it exists (nothing is fetched)."""
    if not (folder / rel).is_file():
        return ""
    return f"<a href='{html.escape(rel)}'>{html.escape(text)}</a>"


def _final(folder: Path, rec: dict[str, Any] | None) -> str:
    if not rec:
        return ""
    head = f"<h2>Final run</h2><p>Trial {rec.get('trial')}'s settings at the full budget"
    if rec["state"] != "complete":
        why = rec.get("reason") or f"{rec['state']} (worker {rec['worker']['pid']})"
        return f"{head}: {html.escape(why)}</p>"
    m = rec["metrics"]
    row = {"epochs": rec["epochs"], "best epoch": rec["best_epoch"], "imgsz": rec["imgsz"],
           "data.fraction": rec["fraction"], **{k: m[k] for k in FINAL_METRICS if k in m},
           "seconds": rec.get("seconds", "")}  # fmt: skip
    run = _link(folder, "final/report.html", "its run report")
    return f"{head} (validation of its best.pt), in final/ {run}</p>{table([row])}"


def write_study_report(
    folder: Path, name: str, trials: list, space: Space, total: int,
    final: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write ``folder/report.html`` (atomically) from the study's trials and final record."""
    again = superseded(trials)
    states = [t.state.name for t in trials if t.number not in again]
    parts = [
        f"<p>{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
        f"{states.count('FAIL')} failed, {states.count('RUNNING')} running of {total} trials"
        + (f" ({len(again)} failed trial(s) run again)" if again else "") + "</p>"
    ]  # fmt: skip
    best = best_trial(trials)
    if best is not None:
        parts.append(f"<h2>Best trial</h2><p>Trial {best.number}, fitness {best.value:.5f}; "
                     f"{_link(folder, 'best.yaml', 'best.yaml')} trains it at the full "
                     "budget</p>")  # fmt: skip
        parts.append(table([{"parameter": k, "value": v} for k, v in best.params.items()]))
    parts.append(_final(folder, final))
    figs = "".join(figure(folder / f, caption) for f, caption in PLOTS)
    if figs:
        parts.append(f"<h2>Plots</h2><div class='grid'>{figs}</div>")
    rows = [{k: v for k, v in r.items() if k != "run_dir"} for r in trial_rows(trials, space)]
    parts.append("<h2>Trials</h2>" + table(rows))
    out = folder / "report.html"
    write_text_atomic(out, page(f"detforge study {name}", "".join(parts)))
    return out
