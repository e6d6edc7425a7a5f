"""The scalar that ranks validation results (it picks ``best.pt``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["fitness"]


def fitness(metrics: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of metrics; undefined metrics (-1) count as 0."""
    return float(sum(w * max(metrics.get(k, 0.0), 0.0) for k, w in weights.items()))
