"""The JSON form of one image's detections, shared by the video's JSON lines and ``POST
/predict``: the same keys wherever a prediction leaves detforge as JSON."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["PredictionLike", "prediction_record"]


class PredictionLike(Protocol):
    """What a predictor returns per image (``detforge.Prediction`` is one).

    boxes: (D, 4) xyxy original pixels; scores: (D,); classes: (D,) int; names: class names."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: list[str]
    latency_ms: float


def prediction_record(pred: PredictionLike) -> dict[str, Any]:
    """``boxes`` (xyxy pixels, 2 decimals: finer is below a pixel's meaning), ``scores`` (as
    computed, so a client filtering by score agrees with the server's threshold), ``classes``
    (indices) and ``names`` (the class name of each box)."""
    classes = [int(c) for c in pred.classes]
    return {
        "boxes": [[round(float(v), 2) for v in b] for b in np.asarray(pred.boxes).reshape(-1, 4)],
        "scores": [float(s) for s in pred.scores],
        "classes": classes,
        "names": [pred.names[c] for c in classes],
    }
