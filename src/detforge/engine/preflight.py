"""Checks of settings that need model or loss code, made before any data is read.

The config loader checks each value on its own; a model name, ``optim.groups`` patterns and
explicit ``loss.cls_weights`` need the model code or the class count, and used to fail only
after the dataset scan (minutes on a large dataset). :func:`check_before_data` runs them first.
"""

from __future__ import annotations

import torch

from ..config import RunConfig
from ..data.datayaml import load_data_yaml
from ..data.errors import DataError
from ..losses.classification import check_class_weights
from ..models.classifier import build_classifier
from ..models.factory import resolve_spec
from ..models.tv_detectors import TorchvisionDetector, TVDetectorSpec, is_tv_detector_name
from ..models.yolo import YOLODetector
from .optim import build_param_groups, parse_group_specs

__all__ = ["check_before_data"]


def check_before_data(cfg: RunConfig) -> None:
    """Raise :class:`~detforge.config.ConfigError` naming the key for a bad ``model.name``,
    ``optim.groups`` entry or pattern, or ``loss.cls_weights`` of the wrong length."""
    classify = cfg.train.task == "classify"
    torchvision = is_tv_detector_name(cfg.model.name)
    spec = None if classify or torchvision else resolve_spec(cfg.model.name, cfg.model.backbone)
    parse_group_specs(cfg.optim.groups)
    if cfg.optim.groups:
        # parameter names do not depend on the class count; a meta model costs no memory
        with torch.device("meta"):
            if classify:
                model = build_classifier(cfg.model.name, 2)
            elif torchvision:
                model = TorchvisionDetector(TVDetectorSpec(cfg.model.name, cfg.train.imgsz), 1)
            else:
                model = YOLODetector(spec, 1)
        build_param_groups(model, cfg.optim.lr0, 0.0, groups=cfg.optim.groups)
    if classify:
        return  # the class count needs the folders: the loss reports a wrong cls_weights length
    weights = cfg.loss.cls_weights
    if isinstance(weights, list) and cfg.data.path:
        try:
            nc = load_data_yaml(cfg.data.path).nc
        except DataError:
            return  # the data set-up reports a broken data.yaml with its file and key
        check_class_weights(weights, nc)
