"""``predict.rect`` on exported models: a dynamic .onnx takes the rectangle and gives the
PyTorch checkpoint's rect detections; a fixed-size one falls back to its square, no error.

Tolerance as the export's parity check (0.05 input pixels, 5e-4 score), in original pixels
here: hituav's 640x512 frames at imgsz 160 are scaled by 4, so boxes within 0.2 px.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from detforge.api import Detector
from detforge.cli.main import main
from detforge.data.images import read_image
from detforge.infer.runtime import OnnxRuntimeModel

SIZE, CONF = 160, 0.05
TOL_BOX, TOL_SCORE = 0.05 * 640 / SIZE, 5e-4


@pytest.fixture(scope="module")
def hituav(shared) -> list[Path]:
    files = sorted((shared / "data" / "hituav" / "images" / "val").glob("*.jpg"))[:4]
    assert len(files) == 4
    return files


def _export(weights, files, out, *args) -> None:
    rc = main(["export", f"weights={weights}", f"imgsz={SIZE}", f"conf={CONF}", f"out={out}",
               f"source={files[0].parent}", "n=4", *args])  # fmt: skip
    assert rc == 0


def _inputs(monkeypatch) -> list[tuple]:
    """Record the input shapes the ONNX session receives."""
    seen: list[tuple] = []
    real = OnnxRuntimeModel.run

    def spy(self, x, *a, **k):
        seen.append(tuple(x.shape))
        return real(self, x, *a, **k)

    monkeypatch.setattr(OnnxRuntimeModel, "run", spy)
    return seen


def test_dynamic_onnx_rect_predict_equals_pytorch_rect_predict(spread_checkpoint, hituav,
                                                               tmp_path, monkeypatch):  # fmt: skip
    weights = spread_checkpoint("yolo-n")
    out = tmp_path / "dyn.onnx"
    _export(weights, hituav, out)  # parity checked on a 128x160 batch of these frames
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["detforge.letterbox"])["square"] is False
    images = [read_image(f) for f in hituav]
    ox = Detector.load(out, imgsz=SIZE)
    seen = _inputs(monkeypatch)
    got = ox.predict(images, conf=CONF, batch=4)
    assert seen == [(4, 3, 128, 160)]
    want = Detector.load(weights, device="cpu", imgsz=SIZE, amp="off").predict(
        images, conf=CONF, batch=4
    )
    total = 0
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w) and g.shape == w.shape == (512, 640)
        total += len(w)
        used = np.zeros(len(g), bool)
        for box, s, c in zip(w.boxes, w.scores, w.classes, strict=True):
            diff = np.abs(g.boxes - box).max(1)
            ok = ~used & (g.classes == c) & (diff <= TOL_BOX) & (np.abs(g.scores - s) <= TOL_SCORE)
            assert ok.any(), f"class {c} score {s} box {box} has no ONNX partner"
            used[np.flatnonzero(ok)[np.argmin(diff[ok])]] = True
    assert total > 20


def test_fixed_size_onnx_falls_back_to_the_square(spread_checkpoint, hituav, tmp_path,
                                                  monkeypatch):  # fmt: skip
    weights = spread_checkpoint("yolo-n")
    out = tmp_path / "fixed.onnx"
    _export(weights, hituav, out, "dynamic=false")
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["detforge.letterbox"])["square"] is True
    images = [read_image(f) for f in hituav[:2]]
    det = Detector.load(out)
    assert det.rect_stride() is None
    seen = _inputs(monkeypatch)
    rect = det.predict(images, conf=CONF)  # rect=True, the default: no error
    square = det.predict(images, conf=CONF, rect=False)
    assert set(seen) == {(2, 3, SIZE, SIZE), (1, 3, SIZE, SIZE)}  # batches run one at a time
    for a, b in zip(rect, square, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert sum(len(p) for p in rect) > 0
