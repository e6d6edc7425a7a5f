"""Files and tables of an image-classification validation: the per-class table,
``confusion_matrix.csv`` (+ ``.png``), ``hardest.json`` and ``report.html``; shared by the end of
training and ``detforge val``."""

from __future__ import annotations

import logging
from pathlib import Path

from ..eval.classify import confusion_csv
from ..eval.classify_validator import ClassifyValResult
from ..utils.atomic import write_json_atomic, write_text_atomic

__all__ = ["format_classify_table", "write_classify_outputs"]

log = logging.getLogger("detforge")


def format_classify_table(val: ClassifyValResult) -> str:
    """Top-1 / top-5 / balanced accuracy, then precision, recall, F1 and support per class."""
    m, d = val.metrics, val.detail
    width = max(8, *(len(n) for n in val.names))
    lines = [
        f"top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  balanced_accuracy "
        f"{m['balanced_accuracy']:.4f}  macro_f1 {m['macro_f1']:.4f}  ({int(d.support.sum())} "
        "images)",
        f"{'class':<{width}}  {'images':>7}  {'precision':>9}  {'recall':>7}  {'f1':>7}",
    ]
    for i, name in enumerate(val.names):
        recall = "-" if d.support[i] == 0 else f"{d.recall[i]:.4f}"
        lines.append(
            f"{name:<{width}}  {int(d.support[i]):>7}  {d.precision[i]:>9.4f}  {recall:>7}  "
            f"{d.f1[i]:>7.4f}"
        )
    return "\n".join(lines)


def write_classify_outputs(
    folder: str | Path, val: ClassifyValResult, plot: bool = True
) -> list[Path]:
    """Write ``confusion_matrix.csv``, ``hardest.json`` and (``plot``, the ``eval.report``
    setting) ``confusion_matrix.png`` and ``report.html`` into ``folder``; returns the files
    written. A failing plot or report is a warning, not an error."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, hard_path = folder / "confusion_matrix.csv", folder / "hardest.json"
    write_text_atomic(csv_path, confusion_csv(val.detail.confusion, val.names))
    write_json_atomic(hard_path, val.hardest(), indent=2)
    written = [csv_path, hard_path]
    if plot:
        from .curves import plot_confusion

        try:
            written.append(
                plot_confusion(
                    val.detail.confusion,
                    val.names,
                    folder / "confusion_matrix.png",
                    background=False,
                )  # fmt: skip
            )
        except Exception as e:  # a plot must not fail a finished run
            log.warning("could not plot the confusion matrix: %s", e)
        from .classify_html import write_classify_report

        try:
            written.append(write_classify_report(folder, val))
        except Exception as e:  # nor must the report
            log.warning("could not write the report: %s", e)
    return written
