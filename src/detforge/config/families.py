"""Which settings apply to which model family, and the error for one that does not.

The anchor-free head (``yolo-*``) and the anchor head (``yolov5-*``) share the classification
options but have their own box terms and matching, so a setting of the other family would be
accepted and ignored; it is an error naming it instead. A setting counts as set when it differs
from its default: a saved ``config.yaml`` lists every key, so being present in a layer says
nothing.

The family is read from the model YAML's ``head.type`` (plain YAML, so the config layer needs no
model code); a name that does not resolve is left to the model factory to report.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .fields import ConfigError, yaml_load

__all__ = ["ANCHOR_ONLY", "ANCHOR_FREE_ONLY", "head_type", "check_family_settings"]

ANCHOR_ONLY = (
    "model.anchors", "loss.coord", "loss.conf", "loss.balance",
    "assign.anchor", "assign.anchor_t", "assign.anchor_iou",
)  # fmt: skip
ANCHOR_FREE_ONLY = ("loss.box", "loss.dfl", "loss.topk", "loss.alpha", "loss.beta")

_BUILT_IN = Path(__file__).resolve().parents[1] / "models" / "configs"
_NAME = re.compile(r"^(?P<family>[a-z0-9]+)-[a-z]+(?:-[a-z0-9]+)?$")


def head_type(model_name: str) -> str | None:
    """``"anchor"`` or ``"dfl"`` for a built-in name or model YAML, None if it does not resolve."""
    if model_name.endswith(".yaml") or ".yaml:" in model_name:
        path = Path(model_name.partition(".yaml")[0] + ".yaml")
    else:
        m = _NAME.match(model_name)
        path = _BUILT_IN / f"{m['family']}.yaml" if m else None
    if path is None or not path.is_file():
        return None
    try:
        tree = yaml_load(path.read_text()) or {}
    except Exception:
        return None  # the model factory reports a broken file with its name
    head = tree.get("head") if isinstance(tree, dict) else None
    return str(head.get("type", "dfl")) if isinstance(head, dict) else "dfl"


def _default(cfg: Any, key: str) -> Any:
    sec, name = key.split(".")
    f = next(f for f in dataclasses.fields(getattr(cfg, sec)) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def check_family_settings(cfg: Any) -> None:
    """Raise a ConfigError naming the first setting of ``cfg`` (a RunConfig) that differs from
    its default and does not apply to ``cfg.model.name`` (or to its backbone)."""
    if cfg.model.backbone == "csp" and cfg.model.backbone_weights is not None:
        raise ConfigError(
            "model.backbone_weights: the csp backbone (model.backbone's default) has no "
            "pretrained weights; choose a torchvision or timm backbone or leave it null"
        )
    kind = head_type(cfg.model.name)
    if kind is None:
        return
    foreign = ANCHOR_FREE_ONLY if kind == "anchor" else ANCHOR_ONLY
    for key in foreign:
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) != _default(cfg, key):
            family = "anchor-based" if kind == "anchor" else "anchor-free"
            own = ANCHOR_ONLY if kind == "anchor" else ANCHOR_FREE_ONLY
            raise ConfigError(
                f"{key} does not apply to model {cfg.model.name!r} ({family} head); its own "
                f"settings are {', '.join(own)}. Remove it, or the recipe or config file that "
                "sets it"
            )
