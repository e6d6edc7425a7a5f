"""Optimizer groups, schedule, EMA, sampler, clipping, checkpoints and run folders."""

import math

import pytest
import torch
from torch import nn

from detforge.data.order import EpochSampler
from detforge.engine.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_state,
    save_atomic,
)
from detforge.engine.ema import ModelEMA
from detforge.engine.gradients import GradientClipper
from detforge.engine.optim import build_param_groups
from detforge.engine.rundir import ResultsCSV, make_run_dir
from detforge.models import build_model


def test_param_groups_no_decay_on_norms_and_biases():
    m = build_model("yolo-n", 2)
    groups = {g["name"]: g for g in build_param_groups(m, 0.01, 5e-4)}
    assert groups["default/weights"]["weight_decay"] == 5e-4
    assert groups["default/norm"]["weight_decay"] == 0
    assert groups["default/bias"]["weight_decay"] == 0
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for _ in m.parameters())
    bn_ids = {id(mod.weight) for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)}
    assert bn_ids == {id(p) for p in groups["default/norm"]["params"]}
    assert all(p.ndim == 1 for p in groups["default/bias"]["params"])


def test_ema_tracks_weights_with_ramp():
    m = nn.Linear(2, 2)
    w_init = m.weight.detach().clone()
    ema = ModelEMA(m, decay=0.9, tau=1.0)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)
    d = 0.9 * (1 - math.exp(-1))
    assert torch.allclose(ema.module.weight, d * w_init + (1 - d) * 1.0, atol=1e-6)
    for _ in range(200):
        ema.update(m)
    assert torch.allclose(ema.module.weight, torch.ones(2, 2), atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_sampler_is_a_function_of_seed_and_epoch_and_skips():
    s = EpochSampler(10, shuffle=True, seed=3)
    s.set_epoch(2)
    full = list(s)
    assert sorted(full) == list(range(10))
    s.resume_at(2, 4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(3)
    assert list(s) != full and len(s) == 10
    s.set_epoch(2)
    assert list(s) == full[4:]
    parts = [list(EpochSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(p) == 4 for p in parts) and set(sum(parts, [])) == set(range(10))


def test_clipper_modes():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert GradientClipper("norm", max_norm=1.0)([p]) == pytest.approx(5.0)
    assert p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    GradientClipper("value", max_value=1.0)([p])
    assert p.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert GradientClipper("none")([p]) == pytest.approx(5.0) and p.grad[1] == 4.0
    p.grad = torch.tensor([float("nan"), 1.0, 0, 0])
    assert not math.isfinite(GradientClipper("norm")([p]))


def test_checkpoint_atomic_and_mismatch_errors(tmp_path):
    path = tmp_path / "w" / "last.pt"
    m = build_model("yolo-n", 2)
    save_atomic({"model": m.state_dict(), "model_spec": {}}, path)
    assert [f.name for f in path.parent.iterdir()] == ["last.pt"]  # no temp files left
    ck = load_checkpoint(path)
    other = build_model("yolo-n", 3)
    with pytest.raises(CheckpointError, match="does not fit this model: .*shape mismatch"):
        load_model_state(other, ck["model"], str(path))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)


def test_run_dirs_number_and_results_csv(tmp_path):
    a = make_run_dir(tmp_path, "exp")
    b = make_run_dir(tmp_path, "exp")
    assert (a.name, b.name) == ("exp", "exp2")
    assert make_run_dir(tmp_path, "exp", exist_ok=True) == a
    csv = ResultsCSV(a / "results.csv")
    csv.append({"epoch": 1, "train/box": 1.5})
    csv.append({"epoch": 2, "train/box": 1.25, "metrics/map50": 0.5})
    text = (a / "results.csv").read_text().splitlines()
    assert text[0] == "epoch,train/box,metrics/map50"
    assert text[1] == "1,1.5," and text[2] == "2,1.25,0.5"
    again = ResultsCSV.load(a / "results.csv")
    again.truncate(1)
    assert len(again.rows) == 1
