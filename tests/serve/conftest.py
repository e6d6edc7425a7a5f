"""A tiny detector checkpoint for the video and serve tests: yolo-n with 3 classes, built (not
trained) and its BatchNorm statistics spread with a fixed seed, so scores are distinct and
scores spread over about 0.05-0.3. Building it takes a fraction of a training run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

NAMES = ["circle", "square", "bar"]


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    from detforge.engine.checkpoint import build_checkpoint, save_atomic
    from detforge.models.factory import build_model

    torch.manual_seed(0)
    model = build_model("yolo-n", len(NAMES)).eval()
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
    for name, p in model.named_parameters():  # class priors near 0.1 instead of 0.002
        if name.startswith("head.cls.") and name.endswith(".2.bias"):
            p.data.copy_(torch.rand(p.shape, generator=g) * 2 - 3)
    path = tmp_path_factory.mktemp("serve_weights") / "tiny.pt"
    ckpt = build_checkpoint(model, None, NAMES, {"train": {"imgsz": 64}}, path.parent)
    save_atomic(ckpt, path)
    return path


@pytest.fixture(scope="session")
def video_12(tmp_path_factory) -> Path:
    """A 12-frame 128x128 MP4 at 10 fps: a circle moving right and a square moving down on
    gray, written with cv2.VideoWriter."""
    path = tmp_path_factory.mktemp("video") / "shapes.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 128))
    assert writer.isOpened()
    for i in range(12):
        img = np.full((128, 128, 3), 90, np.uint8)
        cv2.circle(img, (20 + 6 * i, 40), 14, (40, 200, 240), -1)
        cv2.rectangle(img, (70, 10 + 5 * i), (100, 40 + 5 * i), (220, 60, 30), -1)
        writer.write(img)
    writer.release()
    return path
