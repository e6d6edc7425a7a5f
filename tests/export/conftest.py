"""Checkpoints for export tests: a 1-epoch run on ``tiny_data`` whose weights are then spread
out with a fixed seed, so scores are distinct (an almost untrained model ties many scores, and
NMS then keeps arbitrary members of a tie) and detections exist above modest thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from detforge.cli.main import main
from detforge.engine.checkpoint import load_checkpoint, model_from_checkpoint, save_atomic


def _spread(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)


@pytest.fixture(scope="session")
def spread_checkpoint(tiny_data, tmp_path_factory):
    """model name -> best.pt of a 1-epoch run on tiny_data with spread weights (cached)."""
    made: dict[str, Path] = {}

    def make(name: str = "yolo-n") -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(f"export-{name}")
            rc = main([
                "train", f"data={tiny_data}", f"model={name}", "imgsz=64", "batch=4", "epochs=1",
                "workers=0", f"project={root}", f"data.cache_dir={root / 'cache'}",
                "train.progress=false", "amp=off", "eval.report=false", "train.ema=false",
            ])  # fmt: skip
            assert rc == 0
            path = root / "train" / "weights" / "best.pt"
            ckpt = load_checkpoint(path)
            model = model_from_checkpoint(ckpt, str(path))
            _spread(model, seed=0)
            ckpt["model"], ckpt["ema"] = model.state_dict(), None
            save_atomic(ckpt, path)
            made[name] = path
        return made[name]

    return make
