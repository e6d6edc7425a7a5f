"""Backbones (model.backbone): torchvision ResNets and timm features_only models under our neck
and heads, input normalisation inside the model, pretrained weights only on request and never
downloaded here."""

import sys
import types
import urllib.error

import pytest
import torch
from torch import nn

from detforge.config import load_config
from detforge.config.fields import ConfigError
from detforge.engine.checkpoint import build_checkpoint, model_from_checkpoint
from detforge.engine.optim import build_param_groups
from detforge.engine.preflight import check_before_data
from detforge.models import build_model


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """An empty torchvision cache and a download that fails, as offline."""
    from torchvision.models._api import WeightsEnum

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)  # every torchvision enum
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


@pytest.mark.parametrize(
    ("name", "backbone", "backbone_channels", "strides"),
    [
        ("yolo-n", "resnet18", (128, 256, 512), (8, 16, 32)),
        ("yolov5-n", "resnet18", (128, 256, 512), (8, 16, 32)),
        ("yolo-n-p2", "resnet50", (256, 512, 1024, 2048), (4, 8, 16, 32)),
        ("yolov5-n-p2", "resnet34", (64, 128, 256, 512), (4, 8, 16, 32)),
        ("yolo-n-p2lite", "resnet18", (64, 128, 256, 512), (4, 8, 16)),
    ],
)
def test_neck_and_heads_adapt_to_the_backbone_channels_and_strides(
    name, backbone, backbone_channels, strides
):
    csp = build_model(name, 3)
    model = build_model(name, 3, backbone=backbone)
    assert model.backbone.out_channels == backbone_channels
    levels = model.spec.levels
    proj = [model.neck.proj[str(k)].conv for k in range(min(levels), 6)]
    assert tuple(p.in_channels for p in proj) == backbone_channels
    assert model.neck.out_channels == csp.neck.out_channels  # the scale's own widths
    x = torch.rand(2, 3, 64, 96)
    feats = model.backbone(x)
    assert [(64 // f.shape[2], 96 // f.shape[3]) for f in feats][-1] == (32, 32)
    outs = model(x)
    assert tuple(64 // o.shape[2] for o in outs) == strides == model.strides
    assert [o.shape[1] for o in outs] == [o.shape[1] for o in csp(x)]


def test_normalisation_is_in_the_state_dict_and_applied():
    model = build_model("yolo-n", 2, backbone="resnet18").eval()
    state = model.state_dict()
    mean, std = state["normalize.mean"].flatten(), state["normalize.std"].flatten()
    torch.testing.assert_close(mean, torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(std, torch.tensor([0.229, 0.224, 0.225]))
    x = torch.rand(1, 3, 64, 64)
    manual = (x - state["normalize.mean"]) / state["normalize.std"]
    with torch.no_grad():
        expected = model.head(model.neck(model.backbone(manual)))
        unnormalised = model.head(model.neck(model.backbone(x)))
        got = model(x)
    for g, e, u in zip(got, expected, unnormalised, strict=True):
        torch.testing.assert_close(g, e)
        assert not torch.allclose(g, u)
    # ours trains on [0, 1]: no normalisation module state, the state dict keys as before
    assert not any(k.startswith("normalize.") for k in build_model("yolo-n", 2).state_dict())


def test_the_checkpoint_spec_rebuilds_the_backbone_with_its_statistics():
    model = build_model("yolov5-n", 2, backbone="resnet34").eval()
    with torch.no_grad():
        model.normalize.mean.fill_(0.3)  # the reload must take the stored statistics
    ckpt = build_checkpoint(model, None, ["a", "b"], {}, "run")
    assert ckpt["model_spec"]["backbone"] == "resnet34"
    loaded = model_from_checkpoint(ckpt, "test").eval()
    assert isinstance(loaded.backbone.layer1, nn.Sequential)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b)


def test_a_foreign_backbone_keeps_its_batchnorm_eps_through_build_and_reload():
    from detforge.models.factory import build_model_from_config

    cfg = load_config(["backbone=resnet18", "model.bn_eps=0.002", "model.bn_momentum=0.05"], env={})
    model = build_model_from_config(cfg.model, 2, 64)
    ckpt = build_checkpoint(model, None, ["a", "b"], {"model": {"bn_eps": 0.002}}, "run")
    for m in (model, model_from_checkpoint(ckpt, "test")):
        assert {b.eps for b in m.backbone.modules() if isinstance(b, nn.BatchNorm2d)} == {1e-5}
        assert {b.eps for b in m.neck.modules() if isinstance(b, nn.BatchNorm2d)} == {0.002}
    assert {b.momentum for b in model.modules() if isinstance(b, nn.BatchNorm2d)} == {0.05}


def test_parameter_groups_stay_backbone_neck_head():
    model = build_model("yolo-n", 2, backbone="resnet18")
    roots = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert roots == {"backbone", "neck", "head"}
    cfg = load_config(["recipe=finetune", "backbone=resnet18"], env={})
    groups = build_param_groups(model, 0.001, 5e-4, groups=cfg.optim.groups)
    by_label: dict[str, int] = {}
    for g in groups:
        label = g["name"].split("/")[0]
        by_label[label] = by_label.get(label, 0) + sum(p.numel() for p in g["params"])
        if label.startswith("backbone"):
            assert g["lr"] == pytest.approx(0.0001)
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    assert sum(v for k, v in by_label.items() if k.startswith("backbone")) == n_backbone


def test_bad_backbone_names_are_rejected_by_name():
    with pytest.raises(ConfigError, match=r"model.backbone: unknown backbone 'resnet19'.*resnet18"):
        build_model("yolo-n", 2, backbone="resnet19")
    cfg = load_config(["backbone=resnet101"], env={})
    with pytest.raises(ConfigError, match="model.backbone: unknown backbone 'resnet101'"):
        check_before_data(cfg)  # before any data is read
    with pytest.raises(ConfigError, match="model.backbone_weights: the csp backbone has no"):
        build_model("yolo-n", 2, backbone_weights="imagenet")
    with pytest.raises(ConfigError, match=r"model.backbone_weights: the csp backbone \(model"):
        load_config(["backbone_weights=imagenet"], env={})


def test_timm_without_timm_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ConfigError, match=r"timm:efficientnet_b0 needs the timm package.*"
                       r"pip install 'detforge\[timm\]'"):  # fmt: skip
        build_model("yolo-n", 2, backbone="timm:efficientnet_b0")


class _FeatureInfo:
    def __init__(self, reductions, channels):
        self._r, self._c = reductions, channels

    def reduction(self):
        return self._r

    def channels(self):
        return self._c


class _FakeFeatures(nn.Module):
    """A features_only model: one stride-2 conv per stage."""

    def __init__(self, channels):
        super().__init__()
        chans = [3, *channels]
        self.stages = nn.ModuleList(
            nn.Conv2d(a, b, 3, 2, 1) for a, b in zip(chans, chans[1:], strict=False)
        )
        self.feature_info = _FeatureInfo([2 ** (i + 1) for i in range(len(channels))], channels)
        self.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def forward(self, x):
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []

    def create_model(name, features_only=False, pretrained=False, **kwargs):
        calls.append((name, features_only, pretrained))
        if pretrained:
            raise OSError("offline: cannot reach huggingface.co")
        if name == "shallow":
            return _FakeFeatures([8, 16, 24, 32])  # strides 2..16: no stride 32
        if name == "nope":
            raise RuntimeError("Unknown model (nope)")
        return _FakeFeatures([8, 16, 24, 32, 40])  # strides 2..32

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return calls


def test_a_timm_backbone_gives_the_maps_at_the_needed_strides(fake_timm):
    model = build_model("yolo-n", 2, backbone="timm:fakenet")
    assert fake_timm == [("fakenet", True, False)]  # from scratch unless asked
    assert model.backbone.out_channels == (24, 32, 40)
    torch.testing.assert_close(model.normalize.std.flatten(), torch.full((3,), 0.25))
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[2] for o in outs] == [8, 4, 2]
    p2 = build_model("yolov5-n-p2", 2, backbone="timm:fakenet")
    assert p2.backbone.out_channels == (16, 24, 32, 40)
    # the checkpoint's spec names the timm model; the reload builds it again
    ckpt = build_checkpoint(model, None, ["a", "b"], {}, "run")
    assert model_from_checkpoint(ckpt, "t").spec.backbone == "timm:fakenet"


def test_a_backbone_without_a_needed_stride_is_rejected_by_name(fake_timm):
    msg = (
        r"model.backbone: timm:shallow has feature maps at strides 2, 4, 8, 16 but the model "
        r"needs 8, 16, 32 \(missing 32\)"
    )
    with pytest.raises(ConfigError, match=msg):
        build_model("yolo-n", 2, backbone="timm:shallow")
    with pytest.raises(ConfigError, match=r"timm cannot build timm:nope \(Unknown model"):
        build_model("yolo-n", 2, backbone="timm:nope")


def test_timm_imagenet_weights_offline_say_where_they_go(fake_timm):
    with pytest.raises(FileNotFoundError, match=r"imagenet weights of timm:fakenet are not in "
                       r"timm's cache.*\$HF_HOME/hub.*backbone_weights=<path"):  # fmt: skip
        build_model("yolo-n", 2, backbone="timm:fakenet", backbone_weights="imagenet")
    assert fake_timm == [("fakenet", True, True)]


def test_offline_imagenet_weights_name_the_file_and_the_folder(tmp_path):
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(FileNotFoundError) as err:
        build_model("yolo-n", 2, backbone="resnet18", backbone_weights="imagenet")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth are not in the cache" in msg
    assert "no network" in msg  # the patched download failed: nothing reached the network
    assert f"put the file in {folder}" in msg
    with pytest.raises(FileNotFoundError, match=r"model.backbone_weights: weight file .*x.pth"):
        build_model("yolo-n", 2, backbone="resnet18", backbone_weights=str(tmp_path / "x.pth"))


def test_cached_and_local_weights_load_into_the_backbone(tmp_path):
    import torchvision

    source = torchvision.models.resnet18(weights=None).state_dict()  # with its fc: ignored
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(source, folder / "resnet18-f37072fd.pth")
    for weights in ("imagenet", str(folder / "resnet18-f37072fd.pth")):
        model = build_model("yolo-n", 2, backbone="resnet18", backbone_weights=weights)
        for k, v in model.backbone.state_dict().items():
            torch.testing.assert_close(v, source[k])
    bad = {k: v for k, v in source.items() if not k.startswith("layer4")}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth does not fit this backbone \(\d+ missing"):
        build_model("yolo-n", 2, backbone="resnet18", backbone_weights=str(tmp_path / "bad.pth"))
