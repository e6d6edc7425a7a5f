"""Detector architectures, built from YAML model descriptions."""

from .factory import available_models, build_model, model_info, resolve_spec
from .yolo import YOLODetector

__all__ = ["YOLODetector", "available_models", "build_model", "model_info", "resolve_spec"]
