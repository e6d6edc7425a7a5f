"""Image classifiers: detforge's small CNN, torchvision's EfficientNet-B0 and any timm model
(``timm:<name>``), one interface.

Every classifier takes float images (B, 3, H, W) in [0, 1], as the detectors do, and returns
class logits (B, C). Input normalisation is part of the model (a ``normalize`` module holding
its mean and std as buffers, so checkpoints, predict and export apply it): none for ``cnn-s``
(trained from scratch on [0, 1] inputs), ImageNet's mean/std for the torchvision models.
Parameters live under ``backbone.*`` and ``head.*``, the names the optimizer's per-part
learning rates (``recipe=finetune``) use.

``cnn-s``: the detector family's stem and CSP stages (widths 32-64-128-256-512, 1-2-2-1
bottlenecks), then a 1x1 conv to 1024, global average pooling, dropout and a linear layer:
4.95 M parameters for 4 classes, 5.97 M for 1000 (efficientnet_b0: 4.01 M and 5.29 M).

``timm:<name>``: ``timm.create_model(name, num_classes=0)``, the timm model without its
classifier (timm's ``reset_classifier(0)``: features, pooling and any pre-logits layers) as the
backbone, so ``head.*`` is our dropout and linear layer; its normalisation is timm's data config
for the model (mean/std), held in ``normalize`` like the others. timm is the optional extra
``detforge[timm]``.

Pretrained weights are loaded only when asked (``weights='imagenet'``) through torchvision's
own weight enums and cache (``$TORCH_HOME/hub/checkpoints``), or timm's (the Hugging Face hub
cache); offline without the file, the error names the file or cache and what to do.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from torch import Tensor, nn

from ..config.fields import ConfigError
from .blocks import ConvBNAct, CSPStage
from .norm import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .pretrained import torchvision_state

__all__ = ["CLASSIFIERS", "ClassifierSpec", "Normalize", "ImageClassifier", "build_classifier"]


@dataclass(frozen=True)
class ClassifierSpec:
    """What rebuilds a classifier (checkpoints store it): name, classes, dropout."""

    name: str
    num_classes: int
    dropout: float


class ImageClassifier(nn.Module):
    """normalize -> backbone (features) -> head (logits).

    cam_layer: the name (``named_modules()``) of the last module whose output is a spatial map
    (B, C, h, w), the default layer of attention maps (``detforge cam``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, normalize: Normalize, name: str,
                 cam_layer: str = "backbone"):  # fmt: skip
        super().__init__()
        self.normalize, self.backbone, self.head, self.name = normalize, backbone, head, name
        self.cam_layer = cam_layer

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.normalize(x)))


class PoolHead(nn.Sequential):
    """1x1 conv -> global average pool -> dropout -> linear."""

    def __init__(self, c_in: int, hidden: int, num_classes: int, dropout: float):
        super().__init__(
            ConvBNAct(c_in, hidden, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


def _cnn_s(num_classes: int, dropout: float, weights: str | None) -> ImageClassifier:
    if weights is not None:
        raise ValueError("model cnn-s has no pretrained weights: weights must be null")
    widths, blocks, stem = (64, 128, 256, 512), (1, 2, 2, 1), 32
    layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2)]
    c_prev = stem
    for c, n in zip(widths, blocks, strict=True):
        layers += [ConvBNAct(c_prev, c, 3, 2), CSPStage(c, c, n)]
        c_prev = c
    head = PoolHead(c_prev, 1024, num_classes, dropout)
    backbone = nn.Sequential(*layers)
    last = f"backbone.{len(backbone) - 1}"  # the last CSP stage
    return ImageClassifier(backbone, head, Normalize(), "cnn-s", last)


def _efficientnet_b0(num_classes: int, dropout: float, weights: str | None) -> ImageClassifier:
    from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

    if weights not in (None, "imagenet"):
        raise ValueError(f"efficientnet_b0: weights must be null or 'imagenet', got {weights!r}")
    net = efficientnet_b0(weights=None)
    if weights == "imagenet":
        net.load_state_dict(torchvision_state(EfficientNet_B0_Weights.IMAGENET1K_V1))
    in_features = net.classifier[-1].in_features
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout),
                         nn.Linear(in_features, num_classes))  # fmt: skip
    last = f"backbone.{len(net.features) - 1}"  # the 1x1 conv to 1280 channels
    return ImageClassifier(net.features, head, Normalize(IMAGENET_MEAN, IMAGENET_STD),
                           "efficientnet_b0", last)  # fmt: skip


def _timm(arch: str, num_classes: int, dropout: float, weights: str | None) -> ImageClassifier:
    if not arch:
        raise ConfigError("model.name: 'timm:' needs a timm model name, e.g. timm:resnet18")
    if weights not in (None, "imagenet"):
        raise ValueError(f"timm:{arch}: weights must be null or 'imagenet', got {weights!r}")
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"model.name: timm:{arch} needs the timm package, which is not installed: "
            "pip install 'detforge[timm]'"
        ) from None
    pretrained = weights == "imagenet"
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30.0)  # a download on an unreachable network fails, not hangs
    try:
        net = timm.create_model(arch, pretrained=pretrained, num_classes=0)
    except Exception as e:
        if pretrained and timm.is_model(arch):
            raise FileNotFoundError(
                f"model.weights: imagenet weights of timm:{arch} are not in timm's cache (the "
                f"Hugging Face hub cache, $HF_HOME/hub) and could not be downloaded "
                f"({e.__class__.__name__}: {e}); put them there, or train from scratch "
                "(weights=null)"
            ) from None
        raise ConfigError(f"model.name: timm cannot build timm:{arch} ({e})") from None
    finally:
        socket.setdefaulttimeout(old)
    data_cfg = timm.data.resolve_model_data_config(net)
    features = int(getattr(net, "head_hidden_size", None) or net.num_features)
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))
    info = getattr(net, "feature_info", None)
    # the last stage whose output is a spatial map (timm names it in feature_info)
    last = f"backbone.{info[-1]['module']}" if info else "backbone"
    norm = Normalize(tuple(data_cfg["mean"]), tuple(data_cfg["std"]))
    return ImageClassifier(net, head, norm, f"timm:{arch}", last)


CLASSIFIERS = {"cnn-s": _cnn_s, "efficientnet_b0": _efficientnet_b0}


def build_classifier(
    name: str, num_classes: int, dropout: float = 0.2, weights: str | None = None
) -> ImageClassifier:
    """A classifier by name (``CLASSIFIERS``, or ``timm:<name>``) for ``num_classes`` classes."""
    timm_arch = name[5:] if name.startswith("timm:") else None
    if name not in CLASSIFIERS and timm_arch is None:
        raise ValueError(
            f"unknown classifier {name!r}: expected one of {sorted(CLASSIFIERS)} or timm:<name>"
        )
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    if timm_arch is not None:
        model = _timm(timm_arch, num_classes, dropout, weights)
    else:
        model = CLASSIFIERS[name](num_classes, dropout, weights)
    model.spec, model.nc = ClassifierSpec(name, num_classes, float(dropout)), num_classes
    return model
