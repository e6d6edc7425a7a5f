"""``Detector.predict`` after the latency work (one-pass letterbox, inference mode) gives the
detections of the pipeline it replaced, on real hituav images; and the Python API's default
precision is the command line's (``predict.precision``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from detforge.api import Detector
from detforge.config.schema import PredictSection
from detforge.data.augment.core import letterbox
from detforge.data.images import read_image
from detforge.engine.checkpoint import build_checkpoint, save_atomic
from detforge.infer.device import resolve_precision
from detforge.infer.postprocess import scale_boxes_to_original
from detforge.infer.runtime import detect_batch
from detforge.models.factory import build_model

NAMES = ["person", "car", "bicycle", "other vehicle", "dont care"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """An untrained yolo-n with spread BatchNorm statistics and class priors near 0.1, so it
    gives hundreds of candidate boxes on real images."""
    torch.manual_seed(0)
    model = build_model("yolo-n", len(NAMES)).eval()
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    for name, p in model.named_parameters():
        if name.startswith("head.cls.") and name.endswith(".2.bias"):
            p.data.copy_(torch.rand(p.shape, generator=g) * 2 - 3)
    path = tmp_path_factory.mktemp("parity") / "w.pt"
    save_atomic(build_checkpoint(model, None, NAMES, {"train": {"imgsz": 320}}, path.parent), path)
    return str(path)


def _reference(det: Detector, images: list[np.ndarray], conf: float, shape=None):
    """The predict pipeline before the change: letterbox per image (on the square, or on
    ``shape`` as rectangular validation does), stack, convert, no_grad."""
    empty = np.zeros((0, 5), np.float32)
    placed = [letterbox(img, empty, det.imgsz, shape=shape) for img in images]
    x = torch.from_numpy(np.stack([p[0] for p in placed])).permute(0, 3, 1, 2)
    x = x.float().div_(255).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        dets = detect_batch(det.model, x, conf, 0.7, 300, det.amp_dtype)
    out = []
    for d, (_, _, ratio, pad), img in zip(dets, placed, images, strict=True):
        b = scale_boxes_to_original(d.boxes, ratio, pad, img.shape[:2])
        out.append((b.numpy(), d.scores.numpy(), d.classes.numpy()))
    return out


@pytest.mark.parametrize("size", [320, 640])
def test_predict_gives_the_detections_of_the_pipeline_it_replaced(shared, weights, size):
    files = sorted((shared / "data" / "hituav" / "images" / "val").glob("*.jpg"))[:4]
    images = [read_image(f) for f in files]
    det = Detector.load(weights, device="cpu", imgsz=size, amp="off")
    for conf in (0.23, 0.001):  # about 130 detections per image, and max_det's 300 of thousands
        for batch in (1, 4):
            got = det.predict(images, conf=conf, batch=batch, rect=False)
            want = _reference(det, images, conf) if batch == 4 else None
            for i, p in enumerate(got):
                b, s, c = want[i] if want else _reference(det, [images[i]], conf)[0]
                assert p.shape == images[i].shape[:2]
                # the same input pixels through the same model: equal, not merely close
                np.testing.assert_array_equal(p.boxes, b)
                np.testing.assert_array_equal(p.scores, s)
                np.testing.assert_array_equal(p.classes, c)
            assert all(len(p) > 50 for p in got)  # the comparison covers real detections


@pytest.mark.parametrize("size", [320, 640])
def test_rect_predict_runs_the_rect_canvas_and_maps_boxes_back(shared, weights, size):
    """rect=True (the default): hituav's 640x512 frames on a (size, 0.8 size) canvas, the
    pipeline's letterbox on that canvas, boxes mapped back by the same scale and pad; a mixed
    batch shares the largest rectangle."""
    files = sorted((shared / "data" / "hituav" / "images" / "val").glob("*.jpg"))[:3]
    images = [read_image(f) for f in files]
    portrait = np.ascontiguousarray(images[2].transpose(1, 0, 2))
    det = Detector.load(weights, device="cpu", imgsz=size, amp="off")
    shapes = []
    forward = det.model.forward
    det.model.forward = lambda x: shapes.append(tuple(x.shape[-2:])) or forward(x)
    try:
        got = det.predict(images[:2], conf=0.001, batch=2)
        mixed = det.predict([images[0], portrait], conf=0.001, batch=2)
    finally:
        del det.model.forward
    assert shapes == [(size * 4 // 5, size), (size, size)]
    want = _reference(det, images[:2], 0.001, shape=(size * 4 // 5, size))
    want += _reference(det, [images[0], portrait], 0.001, shape=(size, size))
    for p, (b, s, c) in zip(got + mixed, want, strict=True):
        assert len(p) > 50
        np.testing.assert_array_equal(p.boxes, b)
        np.testing.assert_array_equal(p.scores, s)
        np.testing.assert_array_equal(p.classes, c)
    assert mixed[1].shape == (640, 512)


def test_api_default_precision_is_the_command_lines(weights):
    cpu = torch.device("cpu")
    default = resolve_precision(PredictSection().precision, cpu)
    assert Detector.load(weights, device="cpu").amp_dtype == default
    assert Detector.load(weights, device="cpu", amp="off").amp_dtype is None


def test_api_and_cli_predict_run_the_folded_channels_last_model(weights, tmp_path, monkeypatch):
    import detforge
    from detforge.cli.main import main

    seen: list[tuple] = []
    real = detforge.Detector.predict

    def spy(self, images, *a, **k):
        forward = self.model.forward

        def record(x):
            convs = [m for m in self.model.modules() if isinstance(m, nn.Conv2d)]
            seen.append((
                x.is_contiguous(memory_format=torch.channels_last),
                all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs),
                any(isinstance(m, nn.BatchNorm2d) for m in self.model.modules()),
            ))  # fmt: skip
            return forward(x)

        self.model.forward = record
        try:
            return real(self, images, *a, **k)
        finally:
            del self.model.forward

    monkeypatch.setattr(detforge.Detector, "predict", spy)
    image = np.full((48, 80, 3), 90, np.uint8)
    Detector.load(weights, device="cpu", imgsz=64).predict(image)
    src = tmp_path / "src"
    src.mkdir()
    import cv2

    cv2.imwrite(str(src / "a.png"), image)
    args = ["predict", f"weights={weights}", f"source={src}", "imgsz=64", f"project={tmp_path}"]
    assert main(args) == 0
    assert seen == [(True, True, False)] * 2  # channels-last input and weights, BN folded
