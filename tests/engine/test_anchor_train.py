"""End to end: the anchor-based yolov5-n trains through the ordinary trainer with anchors=auto,
and its checkpoint, reloaded, holds the fitted anchors and predicts the same boxes."""

import csv

import numpy as np
import torch

from detforge.api import Detector
from detforge.config import load_config
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.trainer import Trainer
from detforge.models import build_model


def test_yolov5_n_trains_and_predicts_the_same_after_reload(tiny_args, tiny_data, caplog):
    cfg = load_config(tiny_args + ["model=yolov5-n", "anchors=auto"], env={})
    trainer = Trainer(cfg)
    with caplog.at_level("INFO", logger="detforge"):
        res = trainer.fit()
    assert "anchors=auto (k-means + evolution): best-possible recall" in caplog.text
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in ("train/coord", "train/conf", "train/class", "val/coord", "metrics/map50_95"):
        assert rows[-1][col] != "", col
    assert "train/dfl" not in rows[-1]

    # after training the trainer's EMA model holds best.pt's weights (its final validation)
    best = res.run_dir / "weights" / "best.pt"
    ckpt = load_checkpoint(best)
    fitted = trainer.model.anchors.cpu()
    yaml_anchors = build_model("yolov5-n", 1).anchors
    assert not torch.allclose(fitted, yaml_anchors)  # auto replaced the YAML's anchors
    torch.testing.assert_close(ckpt["model"]["head.anchors"], fitted)
    assert torch.tensor(ckpt["model_spec"]["anchors"]).view(3, 3, 2).allclose(fitted)

    images = sorted((tiny_data.parent / "images" / "val").glob("*"))[:4]
    # fp32 throughout: folding and the ONNX graph are compared, not bf16 rounding
    live = Detector(trainer.eval_model(), ckpt["names"], imgsz=64, device="cpu", amp="off")
    for fuse in (False, True):
        loaded = Detector.load(best, device="cpu", fuse=fuse, amp="off")
        torch.testing.assert_close(loaded.model.anchors.cpu(), fitted)
        a = live.predict(images, conf=0.01)
        b = loaded.predict(images, conf=0.01)
        assert sum(len(p) for p in a) > 0
        for pa, pb in zip(a, b, strict=True):
            assert len(pa) == len(pb)
            np.testing.assert_allclose(pa.boxes, pb.boxes, atol=1e-3)
            np.testing.assert_array_equal(pa.classes, pb.classes)

    # the ONNX export bakes the anchor decoding in and predicts the same boxes
    from detforge.export.onnx import export_onnx

    onnx_path = export_onnx(cfg, best, out=res.run_dir / "w.onnx", images=images).path
    exported = Detector.load(onnx_path).predict(images, conf=0.01)
    for pa, pb in zip(live.predict(images, conf=0.01), exported, strict=True):
        assert len(pa) == len(pb)
        # detections of equal score may come out of the two NMS implementations in either order
        np.testing.assert_allclose(_sorted(pa.boxes), _sorted(pb.boxes), atol=1e-2)


def _sorted(boxes: np.ndarray) -> np.ndarray:
    key = boxes.round(1)
    return boxes[np.lexsort(key.T[::-1])]


def test_yolov5_resume_keeps_the_fitted_anchors_and_is_exact(tiny_args, monkeypatch):
    """A resumed anchors=auto run takes the anchors from its checkpoint (not the YAML's, and
    without fitting again): the model, its spec and the loss use them, and the run ends with the
    weights of the uninterrupted one."""
    import pytest

    args = tiny_args + ["model=yolov5-n", "anchors=auto"]

    def train(*extra):
        trainer = Trainer(load_config(args + list(extra), env={}))
        return trainer, trainer.fit()

    _, full = train("name=full")
    calls = {"n": 0}
    real = torch.optim.SGD.step

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        train("name=part")
    monkeypatch.setattr(torch.optim.SGD, "step", real)
    part = full.run_dir.parent / "part"
    trainer, _ = train("name=part", f"resume={part / 'weights' / 'last.pt'}")
    fitted = load_checkpoint(full.run_dir / "weights" / "last.pt")["model"]["head.anchors"]
    torch.testing.assert_close(trainer.loss_fn.anchors, fitted)
    torch.testing.assert_close(torch.tensor(trainer.model.spec.anchors).view(3, 3, 2), fitted)
    a = load_checkpoint(full.run_dir / "weights" / "last.pt")["model"]
    b = load_checkpoint(part / "weights" / "last.pt")["model"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
