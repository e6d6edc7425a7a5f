"""Image-classification metrics from class scores and true labels.

- top-k accuracy: the true class is among the k highest scores (ties broken by the lower class
  index, as ``argsort`` with a stable sort on the negated scores does);
- the confusion matrix ``cm[true, predicted]`` of the top-1 predictions;
- per class: precision = cm[c, c] / column sum, recall = cm[c, c] / row sum, F1 their harmonic
  mean; a class never predicted has precision 0 and one absent from the labels has recall
  ``nan`` (and is left out of the macro means and of balanced accuracy, which is the mean recall
  over the classes present);
- the hardest mistakes: misclassified samples ordered by the score given to the wrong class.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

__all__ = ["ClassifyMetrics", "classification_metrics", "confusion_csv"]


@dataclass
class ClassifyMetrics:
    top1: float
    top5: float  # top-min(5, C)
    balanced_accuracy: float
    precision: np.ndarray  # (C,)
    recall: np.ndarray  # (C,) nan for classes absent from the labels
    f1: np.ndarray  # (C,)
    support: np.ndarray  # (C,) samples per true class
    confusion: np.ndarray  # (C, C) int64, rows true, columns predicted
    hardest: list[tuple[int, int, int, float]]  # (sample, true, predicted, score), worst first

    def as_dict(self, names: list[str]) -> dict:
        present = self.support > 0
        return {
            "top1": self.top1,
            "top5": self.top5,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_precision": float(self.precision[present].mean()) if present.any() else 0.0,
            "macro_recall": self.balanced_accuracy,
            "macro_f1": float(self.f1[present].mean()) if present.any() else 0.0,
            "per_class": {
                n: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for n, p, r, f, s in zip(
                    names, self.precision, self.recall, self.f1, self.support, strict=True
                )
            },
        }


def classification_metrics(
    scores: np.ndarray, labels: np.ndarray, num_classes: int, hardest: int = 16
) -> ClassifyMetrics:
    """scores: (N, C) logits or probabilities; labels: (N,) true class indices."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or scores.shape != (len(labels), num_classes):
        raise ValueError(
            f"scores must be (N, {num_classes}) for N={len(labels)}, got {scores.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    order = np.argsort(-scores, axis=1, kind="stable")
    pred = order[:, 0] if len(labels) else labels
    k = min(5, num_classes)
    n = max(len(labels), 1)
    top1 = float((pred == labels).sum() / n)
    top5 = float((order[:, :k] == labels[:, None]).any(axis=1).sum() / n) if len(labels) else 0.0
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full(num_classes, np.nan), where=support > 0)
    r0 = np.nan_to_num(recall)
    f1 = np.divide(2 * precision * r0, precision + r0, out=np.zeros(num_classes),
                   where=precision + r0 > 0)  # fmt: skip
    present = support > 0
    balanced = float(recall[present].mean()) if present.any() else 0.0
    wrong = np.flatnonzero(pred != labels)
    wrong_scores = scores[wrong, pred[wrong]]
    worst = wrong[np.argsort(-wrong_scores, kind="stable")][:hardest]
    mistakes = [(int(i), int(labels[i]), int(pred[i]), float(scores[i, pred[i]])) for i in worst]
    return ClassifyMetrics(top1, top5, balanced, precision, recall, f1, support, cm, mistakes)


def confusion_csv(cm: np.ndarray, names: list[str]) -> str:
    """The confusion matrix as CSV: a header of predicted names, one row per true class."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true \\ predicted", *names])
    for name, row in zip(names, cm.tolist(), strict=True):
        w.writerow([name, *row])
    return buf.getvalue()
