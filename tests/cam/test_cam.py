"""Attention maps: EigenCAM finds the dominant component of a layer's activations, Grad-CAM
follows the score it is asked to explain, and ``detforge cam`` writes one overlay per image at
the image's size and names an unknown layer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import detforge
from detforge.cam.maps import eigen_cam, grad_cam
from detforge.cam.run import detector_maps
from detforge.cam.targets import DetectionScore
from detforge.cli import main
from detforge.config.fields import ConfigError
from detforge.models.factory import build_model

pytest.importorskip("pytorch_grad_cam")

S = 16  # side of the constructed feature maps and inputs


def _bump(cy: float, cx: float, sigma: float = 2.0) -> Tensor:
    y, x = torch.meshgrid(torch.arange(float(S)), torch.arange(float(S)), indexing="ij")
    return torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))


class FixedActivations(nn.Module):
    """Ignores its input's values; returns a constant (B, C, S, S) activation."""

    def __init__(self, acts: Tensor):
        super().__init__()
        self.register_buffer("acts", acts)
        self.dummy = nn.Parameter(torch.zeros(()))  # pytorch-grad-cam reads the device from it

    def forward(self, x: Tensor) -> Tensor:
        return self.acts.expand(x.shape[0], -1, -1, -1) + 0 * x[:, :1]


def _relu_minmax(m: Tensor) -> np.ndarray:
    m = (m - m.mean()).clamp(min=0)
    return (m / m.max()).numpy()


def test_eigencam_gives_the_dominant_component_of_the_activations() -> None:
    g = torch.Generator().manual_seed(0)
    v1 = torch.randn(8, generator=g)
    v2 = torch.randn(8, generator=g)
    v2 -= (v2 @ v1) / (v1 @ v1) * v1  # channel directions orthogonal
    strong, weak = _bump(4, 11), _bump(11, 4)
    acts = 3 * v1[:, None, None] * strong + 1 * v2[:, None, None] * weak
    layer = FixedActivations(acts[None])
    model = nn.Sequential(layer, nn.Flatten())
    heat = eigen_cam(model, [layer], torch.zeros(1, 3, S, S))[0]
    assert heat.shape == (S, S)
    expected = _relu_minmax(strong)
    np.testing.assert_allclose(heat, expected, atol=0.05)
    assert np.unravel_index(heat.argmax(), heat.shape) == (4, 11)
    assert heat[11, 4] < 0.05  # the weaker component's peak is not in the map
    # the map does not depend on the overall sign of the activations (an SVD's sign is arbitrary)
    flipped = FixedActivations(-acts[None])
    same = eigen_cam(nn.Sequential(flipped, nn.Flatten()), [flipped], torch.zeros(1, 3, S, S))[0]
    np.testing.assert_allclose(same, heat, atol=1e-5)


class TwoClassScorer(nn.Module):
    """A stand-in detector: ``feat`` copies input channels 0 and 1 (class 0 and class 1
    evidence); the score of class k at anchor n (row-major position) is sigmoid(feat[k] at n).
    Output (B, N=S*S, K=2), as :class:`~detforge.cam.targets.DetectionScores`."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.feat.weight.zero_()
            self.feat.weight[0, 0] = 1.0
            self.feat.weight[1, 1] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        return self.feat(x).flatten(2).transpose(1, 2).sigmoid()


def test_gradcam_follows_the_targeted_score_and_is_zero_where_its_gradient_is() -> None:
    x = torch.zeros(1, 3, S, S)
    x[0, 0, :, : S // 2] = _bump(8, 4)[:, : S // 2]  # class 0 evidence on the left half
    x[0, 1, :, S // 2 :] = _bump(8, 12)[:, S // 2 :]  # class 1 evidence on the right half
    model = TwoClassScorer()
    left_anchor, right_anchor = 8 * S + 4, 8 * S + 12
    maps = grad_cam(
        model, [model.feat], x, [DetectionScore(left_anchor, 0), DetectionScore(right_anchor, 1)]
    )
    assert maps.shape == (2, S, S)
    class0, class1 = maps
    # the class-1 channel gets no gradient from the class-0 score: nothing on the right half
    assert np.abs(class0[:, S // 2 :]).max() < 1e-6
    assert class0[:, : S // 2].max() == pytest.approx(1.0)
    assert np.abs(class1[:, : S // 2]).max() < 1e-6
    assert class1[:, S // 2 :].max() == pytest.approx(1.0)


def test_gradcam_on_a_detector_gives_one_map_per_box_each_with_its_box() -> None:
    torch.manual_seed(0)
    model = build_model("yolo-n", 3).eval()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    cams = detector_maps(model, img, 64, "gradcam", topk=3, conf=0.0, max_det=20)
    assert [c.box for c in cams] == [0, 1, 2]
    assert all(c.heat.shape == (48, 80) and len(c.boxes) == 1 for c in cams)
    scores = [float(c.scores[0]) for c in cams]
    assert scores == sorted(scores, reverse=True)
    one = detector_maps(model, img, 64, "gradcam", box=1, conf=0.0, max_det=20)
    assert len(one) == 1 and one[0].box == 1
    np.testing.assert_array_equal(one[0].boxes, cams[1].boxes)
    np.testing.assert_allclose(one[0].heat, cams[1].heat, atol=1e-5)
    assert not np.allclose(cams[0].heat, cams[1].heat, atol=1e-3)  # another box, another map


@pytest.fixture(scope="module")
def weights(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cam_runs")
    settings = {
        "data.path": str(tiny_data), "train.imgsz": 64, "train.batch": 4, "train.epochs": 1,
        "data.workers": 0, "train.project": str(out), "data.cache_dir": str(out / "cache"),
        "train.progress": False, "train.amp": "off", "eval.report": False,
    }  # fmt: skip
    return detforge.train(**settings).run_dir / "weights" / "best.pt"


def test_cli_writes_one_overlay_per_image_at_its_size(
    weights: Path, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    val = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))[:2]
    src = tmp_path / "src"
    src.mkdir()
    sizes = {"wide": (40, 90), "tall": (70, 50)}
    for (name, (h, w)), f in zip(sizes.items(), val, strict=True):
        cv2.imwrite(str(src / f"{name}.jpg"), cv2.resize(cv2.imread(str(f)), (w, h)))
    project = tmp_path / "runs"
    assert main(["cam", f"weights={weights}", f"source={src}", f"project={project}"]) == 0
    assert "2 eigencam map(s) of 2 images" in capsys.readouterr().out
    run = project / "cam"
    assert sorted(p.name for p in run.iterdir()) == ["tall.jpg", "wide.jpg"]
    for name, hw in sizes.items():
        assert cv2.imread(str(run / f"{name}.jpg")).shape[:2] == hw
    code = main(["cam", f"weights={weights}", f"source={src / 'wide.jpg'}", "method=gradcam",
                 "conf=0", "topk=2", f"project={project}", "name=grad"])  # fmt: skip
    assert code == 0
    outs = sorted((project / "grad").iterdir())
    assert [p.name for p in outs] == ["wide_box0.jpg", "wide_box1.jpg"]
    assert all(cv2.imread(str(p)).shape[:2] == (40, 90) for p in outs)


def test_unknown_or_unusable_layer_is_an_error_naming_it(
    weights: Path, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    image = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))[0]
    base = ["cam", f"weights={weights}", f"source={image}", f"project={tmp_path}"]
    assert main([*base, "layer=neck.td3"]) == 2
    err = capsys.readouterr().err
    assert "layer 'neck.td3' is not a module of this model" in err and "neck.td.3" in err
    assert not (tmp_path / "cam").exists()  # checked before the run folder is made
    assert main([*base, "layer=neck"]) == 2  # the neck returns a list of maps
    assert "layer 'neck' gives list" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="method 'scorecam'"):
        detector_maps(build_model("yolo-n", 2).eval(), np.zeros((8, 8, 3), np.uint8), 32,
                      "scorecam")  # fmt: skip
