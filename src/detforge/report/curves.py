"""PNG plots of evaluation results: PR curves, metric-vs-confidence curves, confusion matrices,
bar charts and per-epoch series.

matplotlib's object API with the Agg canvas is used directly (no pyplot): no global figure
state, no GUI backend, and only the DejaVu fonts bundled with matplotlib, so nothing is fetched.
Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "plot_pr_curves",
    "plot_conf_curve",
    "plot_confusion",
    "plot_bars",
    "plot_series",
]

_MAX_LEGEND = 12  # more classes than this: thin unlabelled lines, only the mean is named


def _figure(width: float = 6.4, height: float = 4.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _legend(ax) -> None:
    """A legend only when something is labelled (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7)


def _class_lines(ax, x: np.ndarray, ys: np.ndarray, labels: Sequence[str]) -> None:
    """One line per row of ys (K, C); rows that are all NaN are skipped."""
    many = len(ys) > _MAX_LEGEND
    for y, label in zip(ys, labels, strict=True):
        if np.all(np.isnan(y)):
            continue
        if many:
            ax.plot(x, y, color="0.6", linewidth=0.6)
        else:
            ax.plot(x, y, linewidth=1.0, label=label)


def plot_pr_curves(
    recall: np.ndarray,
    precision: np.ndarray,
    ap: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    iou: float = 0.5,
) -> Path:
    """recall (R,) thresholds; precision (K, R), NaN rows for classes without ground truth;
    ap (K,) per class (NaN where undefined). The mean curve averages the defined rows."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [f"{n} {a:.3f}" for n, a in zip(names, ap, strict=True)]
    _class_lines(ax, recall, precision, labels)
    defined = ~np.all(np.isnan(precision), axis=1)
    if defined.any():
        mean = precision[defined].mean(axis=0)
        ax.plot(
            recall,
            mean,
            color="tab:blue",
            linewidth=2.5,
            label=f"all classes {np.nanmean(ap[defined]):.3f} AP{round(iou * 100)}",
        )
    return _finish_unit_plot(
        fig, ax, "Recall", "Precision", f"Precision-recall curve (IoU {iou:g})", path
    )


def _finish_unit_plot(fig, ax, xlabel: str, ylabel: str, title: str, path) -> Path:
    """Labels, [0, 1] axes, grid and legend of a curve plot, then saves it."""
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def plot_conf_curve(
    conf: np.ndarray,
    values: np.ndarray,
    mean: np.ndarray,
    names: Sequence[str],
    ylabel: str,
    path: str | os.PathLike,
    best: int | None = None,
) -> Path:
    """A metric (K, C) per class and its class mean (C,) against the confidence grid (C,);
    ``best`` marks the chosen operating point (a grid index)."""
    fig = _figure()
    ax = fig.add_subplot()
    _class_lines(ax, conf, values, list(names))
    label = "all classes"
    if best is not None:
        label += f" {mean[best]:.3f} at {conf[best]:.3f}"
        ax.axvline(conf[best], color="0.3", linestyle=":", linewidth=1)
    ax.plot(conf, mean, color="tab:blue", linewidth=2.5, label=label)
    return _finish_unit_plot(fig, ax, "Confidence", ylabel, f"{ylabel} against confidence", path)


def plot_confusion(
    matrix: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    normalize: bool = False,
    title: str = "Confusion matrix",
    background: bool = True,
) -> Path:
    """matrix (K+1, K+1), rows true class, columns predicted, last index background (detection;
    ``background=False``: (K, K), image classification).
    ``normalize`` divides each row by its sum (the share of each true class's outcomes)."""
    labels = [*names, "background"] if background else list(names)
    m = matrix.astype(np.float64)
    if normalize:
        sums = m.sum(axis=1, keepdims=True)
        m = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    n = len(labels)
    side = min(14.0, 3.0 + 0.45 * n)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if n <= 30:  # beyond that the numbers are unreadable anyway
        hi = m.max() if m.size else 0
        for i in range(n):
            for j in range(n):
                if m[i, j] > 0:
                    txt = f"{m[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                    ax.text(
                        j,
                        i,
                        txt,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if m[i, j] > 0.6 * hi else "black",
                    )
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set(xlabel="Predicted", ylabel="True", title=title + (" (row-normalised)" * normalize))
    return _save(fig, path)


def plot_bars(
    labels: Sequence[str],
    values: Sequence[float],
    path: str | os.PathLike,
    title: str,
    ylabel: str,
    colors: Sequence[str] | None = None,
) -> Path:
    """A labelled bar chart (values printed on top)."""
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    bars = ax.bar(x, values, color=colors)
    for b, v in zip(bars, values, strict=True):
        ax.annotate(
            f"{v:.3g}",
            (b.get_x() + b.get_width() / 2, b.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_series(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str,
    ylabel: str,
    xlabel: str = "epoch",
    logy: bool = False,
) -> Path:
    """Several named y series (NaN = missing point) against one x axis."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    xs = np.asarray(x, np.float64)
    for name, y in series.items():
        ys = np.asarray(y, np.float64)
        ok = ~np.isnan(ys)
        if ok.any():
            ax.plot(
                xs[ok],
                ys[ok],
                marker="o" if ok.sum() < 30 else None,
                markersize=3,
                linewidth=1.2,
                label=name,
            )
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)
