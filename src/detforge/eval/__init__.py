"""Evaluation: COCO-style bbox metrics and COCO json import/export.

Names are resolved lazily so that ``import detforge.eval`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "COCOEvaluator": "detforge.eval.coco",
    "EvalResult": "detforge.eval.coco",
    "STAT_KEYS": "detforge.eval.coco",
    "evaluate_coco_json": "detforge.eval.cocojson",
    "format_stats_table": "detforge.eval.cocojson",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'detforge.eval' has no attribute {name!r}")
