"""``detforge models``: sizes equal model_info of the real models, pretrained weights reported
from torchvision's cache without any network access."""

import urllib.error

import pytest
import torch

from detforge.cli.main import main
from detforge.models import build_model, model_info
from detforge.models.catalog import backbone_rows, model_size


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def fail(*args, **kwargs):
        raise urllib.error.URLError("no network")

    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fail)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_a_listed_row_has_the_model_info_parameters_and_gflops(capsys, offline):
    assert main(["models", "only=yolo-n-p2,yolov5-n", "imgsz=320"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert list(rows) == ["yolo-n-p2", "yolov5-n"]
    for name, head in (("yolo-n-p2", "anchor-free"), ("yolov5-n", "anchor-based")):
        info = model_info(build_model(name, 80), 320)
        assert rows[name][1:] == [head, f"{info['params']:,}", f"{info['gflops']:.2f}", "none"]


def test_backbone_sizes_and_cached_weights_are_reported(offline):
    offline.mkdir(parents=True)
    (offline / "resnet18-f37072fd.pth").write_bytes(b"")  # only its presence is looked at
    rows = {r.name: r for r in backbone_rows(640)}
    assert rows["resnet18"].pretrained == f"imagenet: cached ({offline / 'resnet18-f37072fd.pth'})"
    assert rows["resnet34"].pretrained.startswith("imagenet: not cached (resnet34-")
    assert str(offline) in rows["resnet34"].pretrained
    assert rows["timm:<name>"].pretrained == "timm's own cache"  # timm is in [dev]
    real = build_model("yolo-n", 80, backbone="resnet18").backbone
    info = model_info(real, 640)
    assert (rows["resnet18"].params, rows["resnet18"].gflops) == (info["params"], info["gflops"])
    # the meta-device count equals the real model's for a detector with a backbone, too
    full = build_model("yolov5-n", 80, backbone="resnet18")
    meta = model_size(lambda: build_model("yolov5-n", 80, backbone="resnet18"), 640)
    assert meta == (model_info(full, 640)["params"], model_info(full, 640)["gflops"])


def test_timm_row_says_how_to_install_it_when_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a)
    )
    row = next(r for r in backbone_rows(640) if r.name == "timm:<name>")
    assert row.pretrained == "timm not installed: pip install 'detforge[timm]'"


def test_bad_model_names_and_sizes_are_named(capsys):
    assert main(["models", "only=yolo-q"]) == 2
    out, err = capsys.readouterr()
    assert "model.name: 'yolo-q': unknown scale 'q'" in err and out == ""
    assert main(["models", "imgsz=100"]) == 2
    assert "imgsz must be a positive multiple of 32" in capsys.readouterr().err
