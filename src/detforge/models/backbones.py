"""Backbones from other libraries behind one interface (``model.backbone``): torchvision's
ResNet-18/34/50 and any timm model that offers ``features_only`` (``timm:<name>``; timm is the
optional extra ``detforge[timm]``). detforge's own CSP backbone lives in :mod:`.yolo`.

A backbone here returns its feature maps at the strides the neck asks for (ascending: 8, 16, 32,
and 4 for models with a P2 level) and reports their channels in ``out_channels``; the neck
projects them to its own widths. Its input statistics (``mean``, ``std``: ImageNet's, or the timm
model's own) go into the detector's ``normalize`` module. A backbone is built from scratch; its
pretrained weights are loaded only when asked (:func:`build_backbone` with ``weights``).
"""

from __future__ import annotations

import socket
from typing import Any

from torch import Tensor, nn

from ..config.fields import ConfigError, suggest
from .norm import IMAGENET_MEAN, IMAGENET_STD
from .pretrained import local_state, torchvision_state

__all__ = [
    "TORCHVISION_BACKBONES",
    "check_backbone_name",
    "build_backbone",
    "needed_strides",
    "torchvision_weights",
    "ResNetBackbone",
    "TimmBackbone",
]

# name -> torchvision weight enum class; layer1..layer4 have strides 4, 8, 16, 32
TORCHVISION_BACKBONES = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}
_TIMM_HINT = "pip install 'detforge[timm]'"


def torchvision_weights(name: str) -> Any:
    """The weight enum ``backbone_weights=imagenet`` loads for a torchvision backbone (its
    ``DEFAULT``, torchvision's best ImageNet weights)."""
    import torchvision.models as tvm

    return getattr(tvm, TORCHVISION_BACKBONES[name]).DEFAULT


def needed_strides(levels: tuple[int, ...]) -> tuple[int, ...]:
    """The neck fuses every level from the lowest detection level up to P5."""
    return tuple(2**k for k in range(min(levels), 6))


def check_backbone_name(name: str) -> None:
    """Raise a ConfigError naming ``model.backbone`` for a name that is not a backbone."""
    if name == "csp" or name in TORCHVISION_BACKBONES:
        return
    if name.startswith("timm:"):
        if not name[5:]:
            raise ConfigError("model.backbone: 'timm:' needs a model name, e.g. timm:resnet18")
        _import_timm(name)
        return
    known = ["csp", *TORCHVISION_BACKBONES]
    raise ConfigError(
        f"model.backbone: unknown backbone {name!r}{suggest(name, known)}; expected one of "
        f"{', '.join(known)} or timm:<name>"
    )


def _import_timm(name: str) -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"model.backbone: {name} needs the timm package, which is not installed: {_TIMM_HINT}"
        ) from None
    return timm


def _missing_stride(name: str, have: list[int], need: tuple[int, ...]) -> None:
    lacking = [s for s in need if s not in have]
    if lacking:
        raise ConfigError(
            f"model.backbone: {name} has feature maps at strides {', '.join(map(str, have))} "
            f"but the model needs {', '.join(map(str, need))} (missing "
            f"{', '.join(map(str, lacking))})"
        )


class ResNetBackbone(nn.Module):
    """torchvision ResNet without its pooling and classifier; module names as torchvision's, so
    its state dicts load as they are."""

    def __init__(self, arch: str, strides: tuple[int, ...]):
        super().__init__()
        import torchvision.models as tvm

        net = getattr(tvm, arch)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4,
        )  # fmt: skip
        layer_strides = (4, 8, 16, 32)
        # output channels of layer1..layer4: the last BatchNorm of each layer's last block
        widths = [
            [m for m in layer[-1].modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4)
        ]
        _missing_stride(arch, list(layer_strides), strides)
        self.take = tuple(layer_strides.index(s) for s in strides)
        self.out_channels = tuple(widths[i] for i in self.take)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return [feats[i] for i in self.take]


class TimmBackbone(nn.Module):
    """A timm ``features_only`` model; the maps at the wanted strides picked by reduction."""

    def __init__(self, name: str, strides: tuple[int, ...], pretrained: bool = False):
        super().__init__()
        timm = _import_timm(f"timm:{name}")
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30.0)  # a download on an unreachable network fails, not hangs
        try:
            self.body = timm.create_model(name, features_only=True, pretrained=pretrained)
        except Exception as e:
            if pretrained:
                raise FileNotFoundError(
                    f"model.backbone_weights: imagenet weights of timm:{name} are not in timm's "
                    f"cache (the Hugging Face hub cache, $HF_HOME/hub) and could not be "
                    f"downloaded ({e.__class__.__name__}: {e}); put them there, or pass "
                    "backbone_weights=<path to a state-dict file>"
                ) from None
            raise ConfigError(f"model.backbone: timm cannot build timm:{name} ({e})") from None
        finally:
            socket.setdefaulttimeout(old)
        have = [int(r) for r in self.body.feature_info.reduction()]
        channels = [int(c) for c in self.body.feature_info.channels()]
        _missing_stride(f"timm:{name}", have, strides)
        self.take = tuple(have.index(s) for s in strides)
        self.out_channels = tuple(channels[i] for i in self.take)
        cfg = getattr(self.body, "pretrained_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("std", IMAGENET_STD))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = self.body(x)
        return [feats[i] for i in self.take]


def _load(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load the backbone's own keys from ``state`` (a classifier head in it is ignored)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    shape = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or shape:
        first = missing[0] if missing else f"{shape[0]} shaped {tuple(state[shape[0]].shape)}"
        raise ValueError(
            f"model.backbone_weights: {source} does not fit this backbone "
            f"({len(missing)} missing, {len(shape)} mis-shaped, e.g. {first})"
        )
    module.load_state_dict({k: state[k] for k in own})


def build_backbone(
    name: str, strides: tuple[int, ...], weights: str | None = None
) -> ResNetBackbone | TimmBackbone:
    """A torchvision or timm backbone giving maps at ``strides``. ``weights``: None (from
    scratch), ``"imagenet"`` (the owning library's weights and cache) or a state-dict file."""
    check_backbone_name(name)
    if name == "csp":
        raise ValueError("build_backbone: csp is built by YOLODetector (models.yolo.Backbone)")
    if name.startswith("timm:"):
        net: ResNetBackbone | TimmBackbone = TimmBackbone(
            name[5:], strides, pretrained=weights == "imagenet"
        )
        target: nn.Module = net.body
    else:
        net = target = ResNetBackbone(name, strides)
        if weights == "imagenet":
            enum = torchvision_weights(name)
            _load(net, torchvision_state(enum), f"torchvision {enum}")
    if weights not in (None, "imagenet"):
        _load(target, local_state(weights, "model.backbone_weights"), str(weights))
    return net
