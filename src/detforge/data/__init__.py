"""YOLO-format data pipeline: data.yaml, validation, label cache, decoding, transforms, loader."""

from detforge.data.augment.core import AugmentParams, letterbox
from detforge.data.dataset import YoloDataset
from detforge.data.datayaml import DataSpec, label_path_for, list_images, load_data_yaml
from detforge.data.errors import DataConfigError, DataError
from detforge.data.images import read_image, verify_image
from detforge.data.loader import build_dataloader, collate

__all__ = [
    "AugmentParams",
    "DataConfigError",
    "DataError",
    "DataSpec",
    "YoloDataset",
    "build_dataloader",
    "collate",
    "label_path_for",
    "letterbox",
    "list_images",
    "load_data_yaml",
    "read_image",
    "verify_image",
]
