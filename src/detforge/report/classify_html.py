"""``report.html`` of an image-classification run or validation: one self-contained page, built
like the detector's (:mod:`.html_report`: images inline as data URIs, no scripts, a CSP that
forbids any fetch).

Sections: training curves from ``results.csv`` (when the folder has one), top-1 / top-5 /
balanced accuracy / macro F1, the per-class precision / recall / F1 table, the confusion matrix
(``confusion_matrix.png``, when plotted) and the hardest mistakes as embedded thumbnails.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from ..eval.classify_validator import ClassifyValResult
from ..utils.atomic import write_text_atomic
from .html_report import figure, page, table, training_section

__all__ = ["write_classify_report", "thumbnail_uri"]

_MAIN = ("metrics/top1", "metrics/top5", "metrics/balanced_accuracy", "fitness")
_SUMMARY = ("top1", "top5", "balanced_accuracy", "macro_f1")


def thumbnail_uri(path: str | Path, side: int = 160) -> str | None:
    """The image at ``path`` shrunk to at most ``side`` pixels, as a JPEG ``data:`` URI; None
    for a file that cannot be read (the report names it instead)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    scale = min(1.0, side / max(img.shape[:2]))
    if scale < 1:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None
    return f"data:image/jpeg;base64,{base64.b64encode(buf.tobytes()).decode('ascii')}"


def _evaluation(folder: Path, val: ClassifyValResult) -> str:
    d = val.detail
    head = {k: v for k, v in val.metrics.items() if k in _SUMMARY}
    parts = ["<h2>Evaluation</h2>", table([{"images": int(d.support.sum()), **head}])]
    parts.append(
        "<p class='note'>top-5: the true class among the 5 most probable (all classes when "
        "there are fewer); balanced accuracy: the mean recall over the classes present.</p>"
    )
    rows = [
        {"class": n, "images": int(d.support[i]), "precision": float(d.precision[i]),
         "recall": float(d.recall[i]), "f1": float(d.f1[i])}
        for i, n in enumerate(val.names)
    ]  # fmt: skip
    parts.append("<h3>Per class</h3>" + table(rows))
    parts.append(figure(folder / "confusion_matrix.png", "Confusion matrix (rows: true class)"))
    return "".join(parts)


def _hardest(val: ClassifyValResult, max_images: int) -> str:
    mistakes = val.hardest()[:max_images]
    if not mistakes:
        return "<h2>Hardest mistakes</h2><p>No misclassified image.</p>"
    cells = []
    for m in mistakes:
        caption = html.escape(
            f"{Path(m['file']).name}: {m['true']} predicted {m['predicted']} ({m['score']:.2f})"
        )
        uri = thumbnail_uri(m["file"])
        img = f'<img src="{uri}" alt="{caption}">' if uri else "<p>(unreadable image)</p>"
        cells.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    return (
        "<h2>Hardest mistakes</h2><p class='note'>misclassified images, the most confidently "
        "wrong first (true class, predicted class, its probability)</p>"
        f"<div class='grid'>{''.join(cells)}</div>"
    )


def write_classify_report(
    folder: str | Path, val: ClassifyValResult, title: str | None = None, max_images: int = 16
) -> Path:
    """Write ``folder/report.html`` for the validation ``val`` (and ``folder/results.csv``'s
    training curves when present); returns its path."""
    folder = Path(folder)
    title = title or f"detforge classification {folder.resolve().name}"
    with tempfile.TemporaryDirectory() as tmp:
        training = training_section(folder, Path(tmp), _MAIN, "Accuracy and fitness", _SUMMARY)
    body = training + _evaluation(folder, val) + _hardest(val, max_images)
    out = folder / "report.html"
    write_text_atomic(out, page(title, body))
    return out
