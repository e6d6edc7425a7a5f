"""Fixtures for the evaluator tests: the shared reference data and a pycocotools oracle."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def shared_bench(shared: Path) -> Path:
    """The shared ``bench`` folder (reference data, not project files); skips only when the
    shared folder itself is absent (see tests/conftest.py)."""
    d = shared / "bench"
    if not d.is_dir():
        pytest.fail(f"the shared folder {shared} has no bench/ folder")
    return d


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
def pycoco(shared_root: Path | None) -> Callable[..., Any]:
    """The oracle: ``pycoco(gt_dict, result_list, iou_thrs=None, max_dets=None) -> COCOeval``.

    Skips without pycocotools only where the shared folder is absent; where it exists (CI) the
    exactness tests must run, so a missing package fails them."""
    try:
        import pycocotools.cocoeval  # noqa: F401
    except ImportError as e:
        if shared_root is not None:
            pytest.fail(f"pycocotools is needed (pip install -e '.[dev]'): {e}")
        pytest.skip(f"pycocotools is not installed: {e}")
    return run_pycocotools
