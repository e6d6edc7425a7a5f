"""Attention maps of image classifiers: Grad-CAM follows the class it explains, the map is at
the image's size (0 outside the centre crop the model sees), and ``detforge cam`` on a
classifier checkpoint writes an overlay per image and a cam.jsonl line with class and
probability; unknown layers and classes are errors naming them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detforge.cam.classify import classifier_maps
from detforge.cli import main
from detforge.config.fields import ConfigError
from detforge.engine.checkpoint import build_checkpoint, save_atomic
from detforge.models.classifier import ImageClassifier, Normalize, build_classifier

pytest.importorskip("pytorch_grad_cam")

H, W, S = 32, 48, 32  # image height, width; the classifier's input side (crop columns 8..40)


def _toy() -> ImageClassifier:
    """Feature k = input channel k (red: class 0, green: class 1); logit k = its mean."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    linear = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = conv.weight[1, 1] = 1.0
        linear.weight.copy_(torch.eye(2))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), linear)
    return ImageClassifier(nn.Sequential(conv), head, Normalize(), "toy", "backbone.0").eval()


def _two_blobs() -> np.ndarray:
    """Red disc (radius 6) left of centre, smaller green disc (radius 4) right of it."""
    img = np.zeros((H, W, 3), np.uint8)
    cv2.circle(img, (16, 16), 6, (255, 0, 0), -1)
    cv2.circle(img, (33, 16), 4, (0, 255, 0), -1)
    return img


def test_gradcam_of_a_classifier_follows_the_class_it_explains() -> None:
    model, img = _toy(), _two_blobs()
    red = classifier_maps(model, img, S)  # the predicted class: red covers more pixels
    assert red.heat.shape == (H, W) and red.layers == ["backbone.0"]
    assert red.cls == red.predicted == 0 and 0.5 < red.prob == red.predicted_prob < 1
    assert red.heat.max() == pytest.approx(1.0, abs=1e-3) and red.heat.min() == 0
    assert np.unravel_index(red.heat.argmax(), red.heat.shape)[1] < W // 2
    assert red.heat[:, 28:].max() < 0.05  # nothing where only green is
    green = classifier_maps(model, img, S, cls=1)
    assert green.cls == 1 and green.predicted == 0 and green.prob == pytest.approx(1 - red.prob)
    assert np.unravel_index(green.heat.argmax(), green.heat.shape)[1] > W // 2
    assert green.heat[:, :22].max() < 0.05
    # the model never sees the columns outside the centre crop (48 -> 32: 8 each side)
    assert red.heat[:, :6].max() == 0 and green.heat[:, -6:].max() == 0


def test_default_layer_of_built_classifiers_gives_a_map_that_depends_on_the_class() -> None:
    torch.manual_seed(0)
    model = build_classifier("cnn-s", 3).eval()
    assert model.cam_layer == "backbone.8"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    maps = [classifier_maps(model, img, 64, cls=c) for c in range(3)]
    assert all(m.heat.shape == (40, 56) for m in maps)
    assert all(m.heat.std() > 0.01 for m in maps if m.heat.max() > 0)
    assert not np.allclose(maps[0].heat, maps[1].heat, atol=1e-3)
    assert build_classifier("efficientnet_b0", 3).cam_layer == "backbone.8"


def test_eigencam_on_a_classifier_and_its_errors() -> None:
    model, img = _toy(), _two_blobs()
    cam = classifier_maps(model, img, S, method="eigencam")
    assert cam.heat.shape == (H, W) and cam.cls is None and cam.prob is None
    with pytest.raises(ConfigError, match="class= picks the class Grad-CAM explains"):
        classifier_maps(model, img, S, method="eigencam", cls=1)
    with pytest.raises(ConfigError, match=r"layer 'backbone.7' is not a module.*backbone\.0"):
        classifier_maps(model, img, S, layers=["backbone.7"])
    with pytest.raises(ConfigError, match="layer 'head' gives Tensor of shape \\(1, 2\\)"):
        classifier_maps(model, img, S, layers=["head"])


@pytest.fixture
def toy_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_classifier("cnn-s", 2)
    cfg = {"train": {"task": "classify", "imgsz": 32}, "model": {"name": "cnn-s"}}
    path = tmp_path / "best.pt"
    save_atomic(build_checkpoint(model, None, ["cat", "dog"], cfg, tmp_path), path)
    return path


def test_cli_writes_an_overlay_and_a_record_per_image(toy_weights: Path, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"wide": (30, 50), "tall": (60, 40)}
    for name, hw in sizes.items():
        cv2.imwrite(str(src / f"{name}.png"), rng.integers(0, 255, (*hw, 3), dtype=np.uint8))
    project = tmp_path / "runs"
    assert main(["cam", f"weights={toy_weights}", f"source={src}", f"project={project}"]) == 0
    assert "2 gradcam map(s) of 2 images" in capsys.readouterr().out
    run = project / "cam"
    assert sorted(p.name for p in run.iterdir()) == ["cam.jsonl", "tall.jpg", "wide.jpg"]
    for name, hw in sizes.items():
        assert cv2.imread(str(run / f"{name}.jpg")).shape[:2] == hw
    lines = [json.loads(x) for x in (run / "cam.jsonl").read_text().splitlines()]
    assert [r["output"] for r in lines] == ["tall.jpg", "wide.jpg"]
    for r in lines:
        assert r["class"] == r["predicted"] in ("cat", "dog") and r["layers"] == ["backbone.8"]
        assert 0.5 <= r["probability"] == r["predicted_probability"] <= 1
    code = main(["cam", f"weights={toy_weights}", f"source={src / 'wide.png'}", "class=1",
                 f"project={project}", "name=dog"])  # fmt: skip
    assert code == 0
    (rec,) = [json.loads(x) for x in (project / "dog" / "cam.jsonl").read_text().splitlines()]
    assert rec["class"] == "dog" and rec["class_index"] == 1
    same = next(r for r in lines if r["output"] == "wide.jpg")
    dog = same["probability"] if same["class"] == "dog" else 1 - same["probability"]
    assert rec["probability"] == pytest.approx(dog, abs=1e-5)


def test_cli_names_a_bad_layer_class_or_detector_argument(toy_weights: Path, tmp_path: Path,
                                                          capsys) -> None:  # fmt: skip
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((32, 32, 3), 128, np.uint8))
    base = ["cam", f"weights={toy_weights}", f"source={img}", f"project={tmp_path / 'runs'}"]
    assert main([*base, "layer=backbone.88"]) == 2
    err = capsys.readouterr().err
    assert "layer 'backbone.88' is not a module" in err and "backbone.0, backbone.1" in err
    assert main([*base, "class=bird"]) == 2
    assert "class=bird is neither a class name nor an index of: 0=cat, 1=dog" in (
        capsys.readouterr().err
    )
    assert main([*base, "box=0"]) == 2
    assert "box= apply to detectors" in capsys.readouterr().err
    assert main([*base, "conf=0.5"]) == 2
    assert "conf= apply to detectors" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # every error before the run folder is made
