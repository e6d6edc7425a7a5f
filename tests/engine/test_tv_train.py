"""End to end: each torchvision detector family trains 2 epochs through the ordinary trainer
(loss-dict terms logged by name, mAP from detforge's evaluator), and its checkpoint, reloaded,
predicts the same boxes and validates to the same metrics.

For speed the ResNet-50 body is replaced by a ResNet with one BasicBlock per stage and the
MobileNetV3 body by its 0.25-width version, and Faster R-CNN samples fewer proposals; detforge's
side (wrapper, names, targets, loss, task, checkpoint, evaluator) is exactly the one the real
models run, and tests/models/test_tv_detectors.py builds and runs the real architectures.
"""

import csv
import math

import numpy as np
import pytest
import torch
from torchvision.models import resnet as tv_resnet
from torchvision.models.detection import faster_rcnn, fcos, retinanet

from detforge.api import Detector, config_from_checkpoint
from detforge.cli.val import evaluate_weights
from detforge.config import load_config
from detforge.data.demo import generate_demo_dataset
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.trainer import Trainer
from detforge.models import tv_build

FAMILIES = list(tv_build.TORCHVISION_DETECTORS)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def small_bodies(monkeypatch):
    """Smaller bodies and proposal counts behind the same torchvision builders."""

    def resnet_small(*, weights=None, progress=True, norm_layer=None):
        assert weights is None
        return tv_resnet.ResNet(tv_resnet.BasicBlock, [1, 1, 1, 1], norm_layer=norm_layer)

    for module in (faster_rcnn, retinanet, fcos):
        monkeypatch.setattr(module, "resnet50", resnet_small)
    mobilenet = faster_rcnn.mobilenet_v3_large
    monkeypatch.setattr(
        faster_rcnn, "mobilenet_v3_large", lambda **kw: mobilenet(**kw, width_mult=0.25)
    )
    real = tv_build.builder_kwargs

    def fewer_proposals(name, imgsz):
        kw = real(name, imgsz)
        if name.startswith("fasterrcnn"):
            kw.update(
                rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100,
                rpn_batch_size_per_image=64, box_batch_size_per_image=32,
            )  # fmt: skip
        return kw

    monkeypatch.setattr(tv_build, "builder_kwargs", fewer_proposals)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tv")
    return generate_demo_dataset(root, num_train=4, num_val=2, imgsz=64, seed=1)


LOSS_TERMS = {
    "fasterrcnn-r50-fpn": ("loss_classifier", "loss_box_reg", "loss_objectness",
                           "loss_rpn_box_reg"),
    "fasterrcnn-mobilenet": ("loss_classifier", "loss_box_reg", "loss_objectness",
                             "loss_rpn_box_reg"),
    "retinanet-r50-fpn": ("classification", "bbox_regression"),
    "fcos-r50-fpn": ("classification", "bbox_regression", "bbox_ctrness"),
}  # fmt: skip


@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_and_its_checkpoint_predicts_the_same(name, small_bodies, small_data,
                                                            tmp_path):  # fmt: skip
    args = [
        f"data={small_data}", "imgsz=64", "batch=2", "epochs=2", "workers=0",
        f"project={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}",
        "train.progress=false", "train.deterministic=true", "amp=off", "eval.report=false",
        f"model={name}", "optim.groups=[{match: 'backbone.*', lr_mult: 0.1}, "
        "{match: 'neck.*', lr_mult: 0.5}, {match: 'head.*', lr_mult: 1.0}]",
    ]  # fmt: skip
    trainer = Trainer(load_config(args, env={}))
    res = trainer.fit()
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for term in LOSS_TERMS[name]:
        first, last = float(rows[0][f"train/{term}"]), float(rows[1][f"train/{term}"])
        assert math.isfinite(first) and math.isfinite(last), term
    total = [sum(float(r[f"train/{t}"]) for t in LOSS_TERMS[name]) for r in rows]
    assert total[0] != total[1]
    assert not [k for k in rows[0] if k.startswith("val/")]  # no losses in eval mode
    assert rows[-1]["metrics/map50_95"] != ""
    # per-part learning rates reached the backbone, the FPN and the heads
    lrs = {k: float(v) for k, v in rows[0].items() if k.startswith("lr/")}
    assert lrs["lr/backbone.*/weights"] == pytest.approx(0.1 * lrs["lr/head.*/weights"])
    assert lrs["lr/neck.*/weights"] == pytest.approx(0.5 * lrs["lr/head.*/weights"])
    assert "lr/default/weights" not in lrs  # every parameter is in a named part

    best = res.run_dir / "weights" / "best.pt"
    ckpt = load_checkpoint(best)
    assert ckpt["model_spec"] == {
        "name": name, "imgsz": 64, "arch": "torchvision", "frozen_bn": False
    }  # fmt: skip
    assert "normalize.mean" in ckpt["model"]
    images = sorted((small_data.parent / "images" / "val").glob("*"))
    live = Detector(trainer.eval_model(), ckpt["names"], imgsz=64, device="cpu")
    loaded = Detector.load(best, device="cpu")
    a, b = live.predict(images, conf=0.001), loaded.predict(images, conf=0.001)
    assert sum(len(p) for p in a) > 0
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_allclose(pa.boxes, pb.boxes, atol=1e-4)
        np.testing.assert_array_equal(pa.classes, pb.classes)
        assert pa.classes.min() >= 0 and pa.classes.max() < len(ckpt["names"])

    # `detforge val` of the checkpoint scores what the run's final validation scored
    cfg = config_from_checkpoint(best, [f"data={small_data}", "workers=0"])
    val, _, _ = evaluate_weights(cfg, [str(best)])
    for key in ("map50_95", "map50"):
        assert val.metrics[key] == pytest.approx(res.metrics[key], abs=1e-6)

    # ONNX export covers the YOLO models only: refused with the model's name
    from detforge.config import ConfigError
    from detforge.export.onnx import export_onnx

    with pytest.raises(ConfigError, match=rf"is model '{name}', a torchvision detector"):
        export_onnx(cfg, best, out=tmp_path / "m.onnx")


def test_resumed_faster_rcnn_run_ends_with_the_weights_of_the_uninterrupted_one(
    small_bodies, small_data, tmp_path, monkeypatch
):
    """Faster R-CNN samples anchors and proposals with torch's RNG: a run resumed mid-epoch
    from last.pt (RNG state included) takes the same steps."""
    args = [
        f"data={small_data}", "imgsz=64", "batch=2", "epochs=1", "workers=0",
        f"project={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}",
        "train.progress=false", "train.deterministic=true", "amp=off", "eval.report=false",
        "model=fasterrcnn-mobilenet",
    ]  # fmt: skip

    def train(*extra):
        return Trainer(load_config(args + list(extra), env={})).fit()

    full = train("name=full")
    calls = {"n": 0}
    real = torch.optim.SGD.step

    def crash_on_second_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", crash_on_second_step)
    with pytest.raises(KeyboardInterrupt):
        train("name=part")
    monkeypatch.setattr(torch.optim.SGD, "step", real)
    part = full.run_dir.parent / "part" / "weights" / "last.pt"
    assert load_checkpoint(part)["train"]["step"] == 1
    train("name=part", f"resume={part}")
    a = load_checkpoint(full.run_dir / "weights" / "last.pt")["model"]
    b = load_checkpoint(part)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


def test_tools_that_cover_yolo_models_only_refuse_by_model_name(small_data, tmp_path, capsys):
    from detforge.cli.main import main
    from detforge.engine.checkpoint import FORMAT, save_atomic

    code = main(["lr-find", f"data={small_data}", "model=retinanet-r50-fpn", "iters=2"])
    assert code == 2
    assert "lr-find: model 'retinanet-r50-fpn' (a torchvision detector)" in capsys.readouterr().err
    ckpt = tmp_path / "tv.pt"
    spec = {"name": "fcos-r50-fpn", "imgsz": 64, "arch": "torchvision"}
    save_atomic({"format": FORMAT, "task": "detect", "model_spec": spec, "num_classes": 1,
                 "names": ["a"], "config": {}, "model": {}, "ema": None}, ckpt)  # fmt: skip
    image = sorted((small_data.parent / "images" / "val").glob("*"))[0]
    assert main(["cam", f"weights={ckpt}", f"source={image}", f"project={tmp_path}"]) == 2
    assert "is model 'fcos-r50-fpn', a torchvision detector" in capsys.readouterr().err
