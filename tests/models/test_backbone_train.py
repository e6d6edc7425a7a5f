"""End to end: yolo-n on a torchvision ResNet-18 backbone (from scratch) trains through the
ordinary trainer; its checkpoint, reloaded, holds the backbone and its normalisation and predicts
the same boxes, and the ONNX export (normalisation inside the graph) passes its parity check."""

import csv
import urllib.error

import numpy as np
import torch

from detforge.api import Detector
from detforge.config import load_config
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.trainer import Trainer


def _offline(monkeypatch):
    """Every torchvision weight download fails, as offline."""
    from torchvision.models._api import WeightsEnum

    def fail(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fail)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)


def test_yolo_n_on_resnet18_trains_and_predicts_the_same_after_reload(
    tiny_args, tiny_data, monkeypatch, tmp_path
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _offline(monkeypatch)
    cfg = load_config(tiny_args + ["model=yolo-n", "backbone=resnet18"], env={})
    trainer = Trainer(cfg)
    res = trainer.fit()
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["train/box"]) > 0 and rows[-1]["metrics/map50_95"] != ""

    best = res.run_dir / "weights" / "best.pt"
    ckpt = load_checkpoint(best)
    assert ckpt["model_spec"]["backbone"] == "resnet18"
    assert ckpt["config"]["model"]["backbone"] == "resnet18"
    mean = ckpt["model"]["normalize.mean"].flatten()
    torch.testing.assert_close(mean, torch.tensor([0.485, 0.456, 0.406]))
    assert "backbone.layer4.1.conv2.weight" in ckpt["model"]

    images = sorted((tiny_data.parent / "images" / "val").glob("*"))[:4]
    live = Detector(trainer.eval_model(), ckpt["names"], imgsz=64, device="cpu", amp="off")
    a = live.predict(images, conf=0.01)
    assert sum(len(p) for p in a) > 0
    for fuse in (False, True):
        loaded = Detector.load(best, device="cpu", fuse=fuse, amp="off")
        assert loaded.model.spec.backbone == "resnet18"
        b = loaded.predict(images, conf=0.01)
        for pa, pb in zip(a, b, strict=True):
            assert len(pa) == len(pb)
            np.testing.assert_allclose(pa.boxes, pb.boxes, atol=1e-3)
            np.testing.assert_array_equal(pa.classes, pb.classes)

    from detforge.export.onnx import export_onnx

    # export_onnx raises when ONNX Runtime's raw outputs or detections differ from PyTorch's
    # (whose model normalises its input), so the graph holds the normalisation
    export_cfg = load_config(tiny_args + ["backbone=resnet18", "predict.conf=0.01"], env={})
    result = export_onnx(export_cfg, best, out=res.run_dir / "w.onnx", images=images)
    assert result.parity.passed and result.parity.raw_max_box_diff < result.parity.box_tol
    assert result.parity.matched > 0


def test_a_resumed_run_needs_no_pretrained_weight_file(tiny_args, monkeypatch, tmp_path):
    """backbone_weights=imagenet loads the cached file once; resuming offline after the file is
    gone takes every weight from the checkpoint (the file is not read, no download is tried)."""
    import pytest
    import torchvision

    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    cached = folder / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cached)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _offline(monkeypatch)
    args = tiny_args + ["backbone=resnet18", "backbone_weights=imagenet", "name=part"]
    calls = {"n": 0}
    real = torch.optim.SGD.step

    def crash_on_the_third_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", crash_on_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(args, env={})).fit()
    monkeypatch.setattr(torch.optim.SGD, "step", real)
    cached.unlink()
    last = tmp_path / "runs" / "part" / "weights" / "last.pt"
    res = Trainer(load_config(args + [f"resume={last}"], env={})).fit()
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # and a new run still asks for the file, naming it
    with pytest.raises(FileNotFoundError, match=r"f37072fd.pth are not in the cache.*no network"):
        Trainer(load_config(tiny_args + ["backbone=resnet18", "backbone_weights=imagenet"],
                            env={})).fit()  # fmt: skip
