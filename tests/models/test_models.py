"""Model construction, level variants, output shapes, decoding."""

from pathlib import Path

import pytest
import torch

from detforge.config import ConfigError
from detforge.models import available_models, build_model, model_info
from detforge.models.decode import decode, make_anchors


@pytest.mark.parametrize(
    "name, strides",
    [("yolo-n", (8, 16, 32)), ("yolo-n-p2", (4, 8, 16, 32)), ("yolo-n-p2lite", (4, 8, 16))],
)
def test_levels_and_shapes(name, strides):
    m = build_model(name, num_classes=3).eval()
    assert m.strides == strides
    x = torch.rand(2, 3, 128, 96)
    outs = m(x)
    assert len(outs) == len(strides)
    for o, s in zip(outs, strides, strict=True):
        assert o.shape == (2, 4 * 16 + 3, 128 // s, 96 // s)


def test_scales_grow():
    sizes = [model_info(build_model(f"yolo-{s}", 80), 320)["params"] for s in "nsm"]
    assert sizes[0] < sizes[1] < sizes[2]


def test_yolo_n_size_is_in_the_nano_class():
    info = model_info(build_model("yolo-n", 80), 640)
    assert 2.0e6 < info["params"] < 3.2e6
    assert 5.0 < info["gflops"] < 8.5


def test_unknown_model_suggests():
    with pytest.raises(
        ConfigError, match=r"model.name: 'yolo-nn': unknown scale 'nn' \(did you mean 'n'"
    ):
        build_model("yolo-nn", 2)
    with pytest.raises(ConfigError, match="unknown level set 'p3' \\(did you mean 'p2'"):
        build_model("yolo-n-p3", 2)
    with pytest.raises(ConfigError, match="unknown model 'yolov8n'.*built-in models"):
        build_model("yolov8n", 2)
    assert "yolo-s-p2" in available_models()


def test_custom_yaml(tmp_path):
    from importlib import resources

    text = (resources.files("detforge.models") / "configs" / "yolo.yaml").read_text()
    f = tmp_path / "tiny.yaml"
    f.write_text(text.replace("n: {depth: 0.33, width: 0.25", "n: {depth: 0.33, width: 0.125"))
    small = build_model(f"{f}:n", 2)
    assert sum(p.numel() for p in small.parameters()) < sum(
        p.numel() for p in build_model("yolo-n", 2).parameters()
    )


def test_anchor_points_and_decode_geometry():
    outs = [torch.zeros(1, 4 * 16 + 2, 4, 4), torch.zeros(1, 4 * 16 + 2, 2, 2)]
    pts, strides = make_anchors(outs, (8, 16))
    assert pts.shape == (20, 2) and strides.shape == (20, 1)
    assert torch.equal(pts[0], torch.tensor([0.5, 0.5])) and strides[-1].item() == 16
    # put all DFL mass on bin 2: every box extends 2 strides from its anchor point
    for o in outs:
        o[:, : 4 * 16].view(1, 4, 16, *o.shape[-2:])[:, :, 2] = 50.0
    boxes, scores = decode(outs, (8, 16), 16)
    centre = pts * strides
    assert torch.allclose(boxes[0, :, :2], centre - 2 * strides, atol=1e-3)
    assert torch.allclose(boxes[0, :, 2:], centre + 2 * strides, atol=1e-3)
    assert torch.allclose(scores, torch.full_like(scores, 0.5))


def test_anchor_family_names_levels_and_decoding():
    from detforge.models import available_models, build_model

    names = available_models()
    for n in ("yolov5-n", "yolov5-s", "yolov5-m", "yolov5-n-p2", "yolov5-s-p2", "yolov5-m-p2"):
        assert n in names
    m = build_model("yolov5-n-p2", 4).eval()
    assert m.strides == (4, 8, 16, 32) and m.anchors.shape == (4, 3, 2)
    out = m(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in out] == [(1, 27, s, s) for s in (16, 8, 4, 2)]
    boxes, scores = m.decode(out)
    assert boxes.shape == (1, 3 * (256 + 64 + 16 + 4), 4) and scores.shape[-1] == 4
    assert bool(((scores >= 0) & (scores <= 1)).all())
    # parameter groups are named like the anchor-free family's
    tops = {n.split(".")[0] for n, _ in m.named_parameters()}
    assert tops == {"backbone", "neck", "head"}


def test_anchor_decoding_by_hand():
    """Raw 0 everywhere: every anchor predicts its own shape centred on its cell, with score
    sigmoid(0) x sigmoid(0) = 0.25."""
    from detforge.models import build_model

    m = build_model("yolov5-n", 1)
    out = [torch.zeros(1, 3 * 6, 64 // s, 64 // s) for s in (8, 16, 32)]
    boxes, scores = m.decode(out)
    torch.testing.assert_close(scores, torch.full_like(scores, 0.25))
    # first P3 anchor (10 x 13) of cell (0, 0): centre (4, 4)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([-1.0, -2.5, 9.0, 10.5]))
    # second anchor's first cell comes after the first anchor's 64 cells
    torch.testing.assert_close(boxes[0, 64], torch.tensor([-4.0, -11.0, 12.0, 19.0]))


def test_anchor_yaml_errors_name_the_key(tmp_path):
    from detforge.config import ConfigError
    from detforge.models.factory import resolve_spec

    src = (
        Path(__file__).resolve().parents[2] / "src/detforge/models/configs/yolov5.yaml"
    ).read_text()
    bad = tmp_path / "m.yaml"
    bad.write_text(src.replace("[10, 13, 16, 30, 33, 23]        # P3/8", "[10, 13, 16]"))
    with pytest.raises(ConfigError, match="anchors.default: .* is not a list of positive w, h"):
        resolve_spec(str(bad))
    bad.write_text(src.replace("    - [116, 90, 156, 198, 373, 326]   # P5/32\n", "", 1))
    with pytest.raises(ConfigError, match="anchors.default: expected 3 lists"):
        resolve_spec(str(bad))
