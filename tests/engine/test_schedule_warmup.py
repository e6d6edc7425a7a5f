"""Warmup of momentum and of bias groups (issue 9): relative to each group, never above the
configured momentum, and the default SGD schedule unchanged bit for bit."""

import math

import torch

from detforge.config import load_config
from detforge.engine.optim import build_optimizer, optimizer_kwargs_from_config
from detforge.engine.schedule import build_lr_schedule


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def _run(cfg, steps_per_epoch=10, epochs=5):
    opt = build_optimizer(_model(), **optimizer_kwargs_from_config(cfg.optim, 5e-4))
    s = build_lr_schedule(
        cfg.schedule, lr0=cfg.optim.lr0, momentum=cfg.optim.momentum, epochs=epochs,
        steps_per_epoch=steps_per_epoch,
    )  # fmt: skip
    rows = []
    for step in range(s.total_steps):
        s.apply(opt, step)
        rows.append(
            {g["name"]: (g["lr"], g.get("momentum", g.get("betas"))) for g in opt.param_groups}
        )
    return rows, s


def _old_bias_lr(s, step: int, base: float) -> float:
    """The schedule before the change: bias warmup from an absolute 0.1."""
    unit = step
    if unit < s.warmup_units:
        target = base * s._scheduled(unit)
        return 0.1 + (target - 0.1) * (unit / s.warmup_units)
    return base * s.lr_factor(step)


def test_default_sgd_schedule_is_unchanged_bit_for_bit():
    cfg = load_config(["data=x.yaml", "epochs=20"], env={})
    rows, s = _run(cfg, steps_per_epoch=5, epochs=20)
    assert s.warmup_steps == 15
    for step, row in enumerate(rows):
        assert row["default/bias"][0] == _old_bias_lr(s, step, 0.01)  # exact, not close
    assert rows[0]["default/bias"][0] == 0.1


def test_adamw_bias_warmup_starts_relative_to_its_lr():
    cfg = load_config(["data=x.yaml", "epochs=5", "optimizer=adamw", "lr0=1e-3"], env={})
    rows, s = _run(cfg)
    assert math.isclose(rows[0]["default/bias"][0], 10 * 1e-3)  # not 0.1, 100x lr0
    assert rows[0]["default/weights"][0] == 0.0
    assert rows[s.warmup_steps]["default/bias"][0] == rows[s.warmup_steps]["default/weights"][0]


def test_warmup_keeps_momentum_zero():
    cfg = load_config(["data=x.yaml", "epochs=5", "optim.momentum=0"], env={})
    rows, s = _run(cfg)
    assert s.warmup_steps > 0
    assert {row["default/weights"][1] for row in rows} == {0.0}


def test_warmup_still_ramps_momentum_up():
    cfg = load_config(["data=x.yaml", "epochs=5"], env={})
    rows, s = _run(cfg)
    assert rows[0]["default/weights"][1] == 0.8
    assert rows[s.warmup_steps]["default/weights"][1] == 0.937


def test_old_absolute_setting_is_converted_from_saved_configs_and_named_elsewhere():
    saved = {"schedule": {"warmup_bias_lr": 0.05}, "optim": {"lr0": 0.01}, "data": {"path": "x"}}
    assert load_config(base=saved, env={}).schedule.warmup_bias_factor == 5.0
    try:
        load_config(["schedule.warmup_bias_lr=0.1"], env={})
    except Exception as e:
        assert "schedule.warmup_bias_factor" in str(e)
    else:
        raise AssertionError("the old key must be rejected with its replacement")
