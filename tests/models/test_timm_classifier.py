"""Any timm model as a classifier (``model=timm:<name>``): timm's network without its classifier
as ``backbone.*``, our linear layer as ``head.*``, the model's own normalisation in the model
and the checkpoint, pretrained weights only on request (an offline failure is a clear error),
and a missing timm names the extra. Tiny timm test models only; nothing is downloaded."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from detforge.config import ConfigError, load_config
from detforge.engine.checkpoint import build_checkpoint, model_from_checkpoint
from detforge.engine.optim import build_param_groups
from detforge.models.classifier import build_classifier

timm = pytest.importorskip("timm")

NAME = "timm:test_resnet"  # 0.37 M parameters, normalisation mean = std = 0.5


def test_timm_model_splits_into_backbone_and_head_with_its_own_normalisation():
    torch.manual_seed(0)
    model = build_classifier(NAME, 3, dropout=0.1).eval()
    assert model.spec.name == NAME and model.nc == 3
    assert model.normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert model.normalize.std.flatten().tolist() == [0.5, 0.5, 0.5]
    names = [n for n, _ in model.named_parameters()]
    assert all(n.startswith(("backbone.", "head.")) for n in names)
    assert [n for n in names if n.startswith("head.")] == ["head.1.weight", "head.1.bias"]
    assert isinstance(model.backbone.get_classifier(), torch.nn.Identity)  # timm's own removed
    assert model.head[1].weight.shape == (3, model.backbone.num_features)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    assert model.cam_layer == "backbone.layer4"  # timm's feature_info: the last stage
    groups = build_param_groups(model, 0.01, 0.0, groups=[{"match": "backbone.*", "lr_mult": 0.1}])
    lrs = {g["name"].split("/")[0]: g["lr"] for g in groups}
    assert lrs == {"backbone.*": pytest.approx(0.001), "default": 0.01}
    head_ids = {id(p) for p in model.head.parameters()}
    default = [p for g in groups if g["name"].startswith("default/") for p in g["params"]]
    assert {id(p) for p in default} == head_ids


def test_checkpoint_rebuilds_the_timm_classifier_and_its_normalisation():
    torch.manual_seed(0)
    model = build_classifier(NAME, 2).eval()
    with torch.no_grad():
        model.normalize.mean.fill_(0.25)  # a checkpoint's buffers win over the defaults
    ckpt = build_checkpoint(model, None, ["a", "b"], {}, "run")
    assert ckpt["model_spec"] == {"name": NAME, "num_classes": 2, "dropout": 0.2}
    again = model_from_checkpoint(ckpt, "best.pt").eval()
    assert again.normalize.mean.flatten().tolist() == [0.25] * 3
    x = torch.rand(1, 3, 48, 48)
    torch.testing.assert_close(again(x), model(x))


def test_pretrained_only_on_request_and_offline_failure_is_clear(monkeypatch):
    calls = []

    def offline(name, pretrained=False, **kw):
        calls.append(pretrained)
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    build_classifier(NAME, 2)
    assert calls == [False]
    with pytest.raises(FileNotFoundError, match=r"model.weights: imagenet weights of "
                       r"timm:test_resnet are not in timm's cache.*couldn't connect"):  # fmt: skip
        build_classifier(NAME, 2, weights="imagenet")
    assert calls == [False, True]


def test_missing_timm_unknown_model_and_wrong_task_are_named(monkeypatch):
    with pytest.raises(ConfigError, match="model.name: timm cannot build timm:no_such_net"):
        build_classifier("timm:no_such_net", 2)
    with pytest.raises(ConfigError, match="'timm:' needs a timm model name"):
        build_classifier("timm:", 2)
    with pytest.raises(ValueError, match="weights must be null or 'imagenet'"):
        build_classifier(NAME, 2, weights="best.pt")
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ConfigError, match=r"model.name: timm:test_resnet needs the timm package"
                       r".*pip install 'detforge\[timm\]'"):  # fmt: skip
        build_classifier(NAME, 2)
    assert load_config(["task=classify", f"model={NAME}"], env={}).model.name == NAME
    with pytest.raises(ConfigError, match="is an image classifier: set task=classify"):
        load_config([f"model={NAME}"], env={})


def test_attention_map_of_a_timm_classifier_uses_its_last_stage():
    pytest.importorskip("pytorch_grad_cam")
    from detforge.cam.classify import classifier_maps

    torch.manual_seed(0)
    model = build_classifier(NAME, 3).eval()
    img = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    cam = classifier_maps(model, img, 96, cls=2)
    assert cam.heat.shape == (70, 90) and cam.layers == ["backbone.layer4"] and cam.cls == 2
