"""``runs/<name>/report.html``: one self-contained page that opens offline.

Everything is inside the file: images as base64 ``data:`` URIs, CSS inline, no scripts, no
fonts, and a Content-Security-Policy (``default-src 'none'; img-src data:; style-src
'unsafe-inline'``) that would stop the browser from fetching anything even if a reference
slipped in. Sections, each present only when its inputs exist in the run folder:

- training: losses (``train/*``, ``val/*``), metrics (``metrics/*``, ``fitness``) and the
  learning rate of every parameter group (``lr/*``) per epoch, from ``results.csv``;
- evaluation (``eval/``, written by :func:`detforge.report.explain.explain`): headline numbers,
  per-class table, PR / F1 / P / R curves, confusion matrices, sample predictions;
- diagnosis (``diagnosis/``, written by :func:`detforge.report.diagnose.diagnose`): dAP per
  error type, counts, classes and sizes, the gallery of the worst images.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import write_text_atomic

__all__ = ["write_report", "training_section", "page", "figure", "table", "CSP"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_SUMMARY = ("map50_95", "map50", "map_small", "precision", "recall", "f1", "mean_iou")
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_STYLE = """
body{font-family:sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 12px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid figure{margin:0;flex:1 1 360px;max-width:590px}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:.8em;color:#555}
.note{color:#555;font-size:.85em}.scroll{overflow-x:auto}
"""


def figure(path: Path, caption: str = "") -> str:
    """``<figure>`` with the PNG/JPEG at ``path`` inline as a data URI ("" if it is missing)."""
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(caption)}">{cap}</figure>'
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else ("-" if v == -1 else f"{v:.4g}")
    return html.escape(str(v))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of ``rows`` (columns: ``columns`` or the first row's keys), escaped."""
    if not rows:
        return ""
    cols = list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _read_results(path: Path) -> dict[str, list[float]]:
    """results.csv -> {column: values}; empty or non-numeric cells become NaN."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, [])
    for r in rows:
        for k in cols:
            try:
                cols[k].append(float(r.get(k) or "nan"))
            except ValueError:
                cols[k].append(float("nan"))
    return cols


_DETECT_MAIN = ("metrics/map50_95", "metrics/map50", "metrics/map75", "fitness")


def training_section(
    run_dir: Path,
    tmp: Path,
    main: Sequence[str] = _DETECT_MAIN,
    main_title: str = "mAP and fitness",
    summary: Sequence[str] = _SUMMARY,
) -> str:
    """The "Training" section from ``run_dir/results.csv`` ("" without it): the last epoch's
    ``summary`` metrics, and plots (PNGs written to ``tmp``) of the losses, the ``main``
    columns, the other metrics and the learning rates per epoch."""
    from .curves import plot_series

    path = run_dir / "results.csv"
    if not path.is_file():
        return ""
    cols = _read_results(path)
    n = len(next(iter(cols.values()), []))
    x = cols.get("epoch", list(range(1, n + 1)))
    groups = [
        ("train_loss.png", "Training losses", "loss", [k for k in cols if k.startswith("train/")]),
        ("val_loss.png", "Validation losses", "loss", [k for k in cols if k.startswith("val/")]),
        ("main.png", main_title, "value", [k for k in main if k in cols]),
        (
            "metrics.png",
            "Other validation metrics",
            "value",
            [k for k in cols if k.startswith("metrics/") and k not in main],
        ),
        (
            "lr.png",
            "Learning rate per parameter group",
            "lr",
            [k for k in cols if k.startswith("lr/")],
        ),
    ]
    figs = []
    for file, title, ylabel, keys in groups:
        series = {k.split("/", 1)[-1]: cols[k] for k in keys}
        series = {k: v for k, v in series.items() if any(not math.isnan(y) for y in v)}
        if series:
            plot_series(x, series, tmp / file, title, ylabel)
            figs.append(figure(tmp / file, title))
    keys = [f"metrics/{k}" for k in summary] + ["fitness"]
    last = {k.split("/")[-1]: cols[k][-1] for k in keys if k in cols and cols[k]}
    summary = table([{"epochs": n, **last}]) + "<p class='note'>last epoch</p>" if last else ""
    return f"<h2>Training</h2>{summary}<div class='grid'>{''.join(figs)}</div>"


def _evaluation(d: Path) -> str:
    if not (d / "metrics.json").is_file():
        return ""
    m = json.loads((d / "metrics.json").read_text())
    head = {**{k: m["stats"][k] for k in ("map50_95", "map50", "map_small") if k in m["stats"]}}
    head.update({k: m["metrics"][k] for k in ("precision", "recall", "f1", "mean_iou", "conf")})
    parts = ["<h2>Evaluation</h2>", table([head])]
    if m.get("at_conf"):
        parts.append("<p>At the chosen confidence:</p>" + table([m["at_conf"]]))
    parts.append(
        "<p class='note'>P, R and F1 are class means at the confidence that maximises "
        "the mean F1 (conf); mean_iou averages the IoU of all matches at IoU 0.5.</p>"
    )
    parts.append(table(m["per_class"]))
    figs = [
        ("pr_curve.png", "Precision-recall (per class and mean)"),
        ("f1_curve.png", "F1 against confidence"),
        ("p_curve.png", "Precision against confidence"),
        ("r_curve.png", "Recall against confidence"),
        ("confusion_matrix.png", "Confusion matrix"),
        ("confusion_matrix_normalized.png", "Confusion matrix, row-normalised"),
    ]
    parts.append("<div class='grid'>" + "".join(figure(d / f, c) for f, c in figs) + "</div>")
    samples = [figure(d / s, Path(s).name) for s in m.get("samples", [])]
    if samples:
        parts.append(
            "<h2>Sample predictions</h2><p class='note'>ground truth green, true "
            "positives blue, false positives red</p>"
        )
        parts.append("<div class='grid'>" + "".join(samples) + "</div>")
    return "".join(parts)


def _points(v: float) -> str:
    """AP as TIDE prints it: in points (x 100), two decimals."""
    return f"{v * 100:.2f}" if v >= 0 else "-"


def _diagnosis(d: Path, max_images: int) -> str:
    if not (d / "diagnosis.json").is_file():
        return ""
    s = json.loads((d / "diagnosis.json").read_text())
    row = {"AP50": _points(s["map50"])}
    row.update({f"d{k.capitalize()}": _points(v) for k, v in s["dap"].items()})
    sp = s["special_dap"]
    row.update({"dFP": _points(sp["false_positives"]), "dFN": _points(sp["false_negatives"])})
    counts = {
        "errors": "count",
        **{k.capitalize(): v for k, v in s["counts"].items()},
        "FP": s["false_positives"],
        "FN": s["false_negatives"],
    }
    parts = ["<h2>Error diagnosis (TIDE)</h2>", table([row]), table([counts])]
    parts.append(
        "<p class='note'>AP50 and dX in points; dX = AP50 gained by fixing every error of type X"
        " (Bolya et al., ECCV 2020); FP / FN: every false positive / negative.</p>"
    )
    parts.append(figure(d / "diagnosis.png", "dAP50 per error type"))
    cols = ["class", "instances", "ap50", "main_error", "cls", "loc", "both", "dupe", "bkg", "miss"]
    parts.append("<h3>Classes (lowest AP50 first)</h3>")
    parts.append(table(sorted(s["per_class"], key=lambda r: r["ap50"]), cols))
    parts.append("<h3>Object sizes</h3>" + table(s["sizes"]))
    gallery = [
        figure(
            d / g["file"],
            f"{Path(g['path']).name}: {g['missed']} missed, {g['false_positives']} false positives",
        )
        for g in s["gallery"][:max_images]
    ]
    if gallery:
        parts.append("<h3>Worst images</h3><div class='grid'>" + "".join(gallery) + "</div>")
    return "".join(parts)


def write_report(
    run_dir: str | os.PathLike,
    title: str | None = None,
    eval_dir: str | os.PathLike | None = None,
    diagnosis_dir: str | os.PathLike | None = None,
    max_images: int = 8,
) -> Path:
    """Build ``run_dir/report.html`` from what the run folder holds and return its path.

    eval_dir / diagnosis_dir default to ``run_dir/eval`` and ``run_dir/diagnosis``.
    """
    run_dir = Path(run_dir)
    ev = Path(eval_dir) if eval_dir else run_dir / "eval"
    dg = Path(diagnosis_dir) if diagnosis_dir else run_dir / "diagnosis"
    title = title or f"detforge run {run_dir.resolve().name}"
    with tempfile.TemporaryDirectory() as tmp:
        body = training_section(run_dir, Path(tmp)) + _evaluation(ev) + _diagnosis(dg, max_images)
    if not body:
        body = "<p>Nothing to report yet: no results.csv, eval/ or diagnosis/ in this run.</p>"
    out = run_dir / "report.html"
    write_text_atomic(out, page(title, body))
    return out


def page(title: str, body: str) -> str:
    """A whole self-contained page: the CSP, the inline style, ``title`` as heading, ``body``."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
