"""Fixtures for the evaluator tests: the shared reference data and a pycocotools oracle."""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _shared_dir() -> Path | None:
    """``../shared`` beside the repository (CI puts it there), else $DETFORGE_SHARED."""
    candidates = [Path(__file__).resolve().parents[2] / ".." / "shared"]
    if os.environ.get("DETFORGE_SHARED"):
        candidates.append(Path(os.environ["DETFORGE_SHARED"]))
    for c in candidates:
        if (c / "bench").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_bench() -> Path:
    """The shared ``bench`` folder, or skip (it holds reference data, not project files)."""
    d = _shared_dir()
    if d is None:
        pytest.skip("shared reference data not found: no ../shared/bench beside the repo and "
                    "DETFORGE_SHARED is not set")  # fmt: skip
    return d / "bench"


def run_pycocotools(
    gt: dict,
    dets: list[dict],
    iou_thrs: Any = None,
    max_dets: Any = None,
) -> Any:
    """pycocotools COCOeval (bbox) on in-memory json objects; returns the COCOeval object.

    An empty result list is built by hand, since ``COCO.loadRes`` cannot take one.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        if dets:
            d = g.loadRes(copy.deepcopy(dets))
        else:
            d = COCO()
            d.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            d.createIndex()
        e = COCOeval(g, d, "bbox")
        if iou_thrs is not None:
            e.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        if max_dets is not None:
            e.params.maxDets = list(max_dets)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


@pytest.fixture(scope="session")
def pycoco() -> Callable[..., Any]:
    """The oracle: ``pycoco(gt_dict, result_list, iou_thrs=None, max_dets=None) -> COCOeval``."""
    pytest.importorskip("pycocotools")
    return run_pycocotools
