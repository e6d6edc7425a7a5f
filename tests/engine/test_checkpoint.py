"""The checkpoint format: round trip, format-1 files, and refusing pickles that run code."""

import random

import numpy as np
import pytest
import torch

from detforge.api import Detector, config_from_checkpoint
from detforge.config import config_to_dict, load_config
from detforge.engine.checkpoint import (
    FORMAT,
    CheckpointError,
    build_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_atomic,
)
from detforge.engine.ema import ModelEMA
from detforge.engine.hooks import Hook
from detforge.engine.trainer import Trainer
from detforge.models import build_model


def _model_and_ema():
    torch.manual_seed(0)
    model = build_model("yolo-n", 3)
    ema = ModelEMA(model, 0.5, 1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    ema.update(model)
    return model, ema


def test_round_trip_keeps_weights_ema_once_and_state(tmp_path):
    model, ema = _model_and_ema()
    cfg = config_to_dict(load_config(["imgsz=96"], env={}))
    state = {"epoch": 3, "rng": {"numpy": (1, torch.arange(3))}, "hooks": {"X": {"n": 1}}}
    ckpt = build_checkpoint(model, ema.state_dict(), ["a", "b", "c"], cfg, tmp_path, {}, state)
    save_atomic(ckpt, tmp_path / "w.pt")
    back = load_checkpoint(tmp_path / "w.pt")
    assert back["format"] == FORMAT and set(back) == set(ckpt)
    assert back["train"]["epoch"] == 3 and back["train"]["hooks"] == {"X": {"n": 1}}
    assert back["ema"]["updates"] == 1 and back["run_dir"] == str(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    # inference weights are the EMA's, and the model is rebuilt from the saved spec
    rebuilt = model_from_checkpoint(back, "w.pt")
    for k, v in ema.module.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v)
    det = Detector.load(tmp_path / "w.pt", device="cpu")
    assert det.names == ["a", "b", "c"] and det.imgsz == 96


def _old_format(ck: dict) -> dict:
    """What the trainer wrote before format 2 (detforge-checkpoint-1)."""
    t = ck["train"]
    hooks = t.pop("hooks")
    name, key, *rest = t["rng"]["numpy"]
    t["rng"]["numpy"] = (name, key.numpy().astype(np.uint32), *rest)  # a numpy array
    t.pop("epoch_sums")
    ema = ck["ema"]
    return {
        "format": "detforge-checkpoint-1",
        **{k: ck[k] for k in ("model_spec", "num_classes", "names", "model", "metrics", "config")},
        "ema": ema["module"] if ema else None,
        "ema_state": ema,
        **t,
        "early_stop": hooks["EarlyStopHook"],
    }


class StopAfter(Hook):
    def __init__(self, n):
        self.n = n

    def after_epoch(self, trainer):
        if trainer.epoch == self.n:
            trainer.request_stop("test stop")


def test_format_1_checkpoints_load_and_resume_exactly(tiny_args):
    def fit(name, hooks=(), **kw):
        args = tiny_args + [f"name={name}"] + [f"{k}={v}" for k, v in kw.items()]
        return Trainer(load_config(args, env={}), hooks=hooks).fit()

    full = fit("full")
    part = fit("part", [StopAfter(1)])
    last = part.run_dir / "weights" / "last.pt"
    old = _old_format(load_checkpoint(last))
    torch.save(old, last)  # as an earlier detforge wrote it, numpy RNG state included
    ck = load_checkpoint(last)
    assert ck["format"] == FORMAT and ck["train"]["epoch"] == 1
    assert ck["train"]["hooks"]["EarlyStopHook"] == old["early_stop"]
    assert all(torch.equal(ck["ema"]["module"][k], v) for k, v in old["ema"].items())
    assert Detector.load(last, device="cpu").names == old["names"]
    assert config_from_checkpoint(last).train.imgsz == 64
    random.seed(5)  # resume restores the RNG state it saved, whatever it is now
    resumed = fit("part", resume=last)
    assert resumed.run_dir == part.run_dir
    a = load_checkpoint(full.run_dir / "weights" / "last.pt")["model"]
    b = load_checkpoint(last)["model"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


class _CreatesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, tiny_args):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"model": {"w": _CreatesAFile(str(marker))}, "model_spec": {}}, bad)
    with pytest.raises(CheckpointError, match=f"checkpoint {bad} holds an object of type .*open"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match=str(bad)):
        Detector.load(bad, device="cpu")
    with pytest.raises(CheckpointError, match=str(bad)):
        Trainer(load_config(tiny_args + [f"resume={bad}"], env={})).fit()
    assert not marker.exists()
