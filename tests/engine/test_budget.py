"""train.time: the epoch count fitted to a time budget, on a fake clock (no wall-clock timing)."""

import csv

import pytest

from detforge.config import ConfigError, load_config
from detforge.engine.budget import TimeBudgetHook, fit_epochs
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.hooks import Hook
from detforge.engine.plan import plan_run, scale_stages
from detforge.engine.resume import load_train_config
from detforge.engine.schedule import build_schedule_from_config, is_bias_group
from detforge.engine.stages import Stage
from detforge.engine.trainer import Trainer

STEP_S, VAL_S = 10.0, 5.0  # fake seconds per optimizer step and per epoch's validation


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Spend(Hook):
    """Advances the fake clock as if each step and each validation took fixed time; can
    interrupt the run in a given epoch (after some steps)."""

    main_process_only = False

    def __init__(self, clock, crash_at=None):
        self.clock, self.crash_at = clock, crash_at

    def after_step(self, tr):
        self.clock.now += STEP_S
        if self.crash_at == (tr.epoch, tr.batch_in_epoch):
            raise KeyboardInterrupt("test interruption")

    def after_epoch(self, tr):
        self.clock.now += VAL_S  # after the budget's fit: counted as the epoch's overhead


def _run(args, clock, crash_at=None):
    cfg = load_train_config(args, env={})
    hooks = [TimeBudgetHook(cfg.train.time * 3600, clock=clock), Spend(clock, crash_at)]
    tr = Trainer(cfg, hooks=hooks)
    return tr, tr.fit()


def _budget_args(tiny_args, seconds=200):
    # 16 images, batch 4: 4 steps (40 s) + 5 s validation per fake epoch
    args = [a for a in tiny_args if not a.startswith("epochs=")]
    return args + ["epochs=20", f"time={seconds / 3600!r}", "augment.close_mosaic=10"]


def test_fit_epochs_arithmetic():
    # 110 s left after a reserve of 2 x 5 s, 30 s an epoch: 3 more after 3 done
    assert fit_epochs(200, 80, 3, [25.0], [5.0, 5.0], 50) == 6
    assert fit_epochs(200, 80, 3, [25.0], [5.0, 15.0], 50) == 5  # 90 s left, 35 s an epoch
    assert fit_epochs(200, 80, 3, [25.0], [5.0], 4) == 4  # train.epochs is an upper bound
    assert fit_epochs(100, 150, 1, [150.0], [10.0], 50) == 1  # over budget: this one is last


def test_a_budget_run_ends_inside_it_with_a_whole_validated_last_epoch(tiny_args):
    clock = FakeClock()
    tr, res = _run(_budget_args(tiny_args), clock)
    # epoch 1: 40 s trained, validation estimated 20 s -> 3 epochs; epoch 2: 85 s used,
    # 45 s an epoch -> 4; epoch 3: 130 s used -> 4 (the next epoch would end past 200 s)
    assert res.epochs_run == 4 and tr.plan.epochs == 4 and res.stop_reason == ""
    assert clock.now == 4 * (4 * STEP_S + VAL_S) <= 200
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["metrics/map50_95"] != ""  # the last epoch was validated
    last = load_checkpoint(res.run_dir / "weights" / "last.pt")
    assert last["train"]["epoch"] == 4 and last["train"]["batch_in_epoch"] == 0
    assert last["train"]["hooks"]["TimeBudgetHook"]["fitted"] == 4
    assert (res.run_dir / "weights" / "best.pt").is_file() and res.metrics
    # the schedule spans the fitted run: it reaches its final lr (lrf) at the fitted last step
    assert tr.schedule.total_steps == tr.plan.schedule_steps == 4 * 4
    assert tr.schedule.lr_factor(tr.plan.schedule_steps) == pytest.approx(tr.cfg.schedule.lrf)
    # close_mosaic 10 of 20 epochs becomes 2 of the fitted 4
    assert tr.plan.mosaic_until == 2 and tr.data.train_set.mosaic_until_epoch == 2
    # what a run planned at 4 epochs from the start would follow, step for step
    fixed = build_schedule_from_config(tr.cfg, tr.plan.steps_per_epoch, 4)
    assert [tr.schedule.lr_factor(s) for s in range(17)] == [fixed.lr_factor(s) for s in range(17)]
    for g in tr.optimizer.param_groups:  # the lr the last step ran with: step 15 of that plan
        assert g["lr"] == fixed.lr(15, g["initial_lr"], is_bias_group(g))


def test_a_resumed_budget_run_continues_the_same_fitted_plan(tiny_args):
    clock = FakeClock()
    args = _budget_args(tiny_args)
    with pytest.raises(KeyboardInterrupt):
        _run(args + ["name=cut"], clock, crash_at=(2, 2))  # epoch 3, after 2 of 4 steps
    project = next(a for a in tiny_args if a.startswith("project=")).split("=", 1)[1]
    last = f"{project}/cut/weights/last.pt"
    saved = load_checkpoint(last)
    assert saved["train"]["epoch"] == 2 and saved["train"]["batch_in_epoch"] == 2
    state = saved["train"]["hooks"]["TimeBudgetHook"]
    assert state["fitted"] == 4 and state["used"] == 2 * 45 + 2 * STEP_S

    seen = []

    class Plan(Hook):
        def before_train(self, tr):
            seen.append((tr.plan.epochs, tr.schedule.total_steps, tr.plan.mosaic_until))

    clock2 = FakeClock()
    cfg = load_train_config([f"resume={last}"], env={})
    tr = Trainer(cfg, hooks=[TimeBudgetHook(cfg.train.time * 3600, clock2), Spend(clock2), Plan()])
    res = tr.fit()
    assert seen == [(4, 16, 2)]  # the fitted plan came back from the checkpoint
    assert res.epochs_run == 4 and tr.plan.epochs == 4
    # 110 s used before the interruption, then 2 steps + 5 s, then one 45 s epoch
    assert 110 + clock2.now == 180


def test_bad_budgets_are_rejected_by_name(tiny_args):
    for bad in ("0", "-1", "abc"):
        with pytest.raises(ConfigError, match="train.time"):
            load_config(tiny_args + [f"time={bad}"], env={})
    with pytest.raises(ValueError, match="train.time"):
        TimeBudgetHook(0)


def test_stages_and_close_mosaic_scale_to_the_fitted_run(tiny_args):
    stages = [Stage(0, 30, 320, 32), Stage(30, 60, 480, 16), Stage(90, 10, 640, 8)]
    assert [(s.first_epoch, s.epochs) for s in scale_stages(stages, 10)] == [(0, 3), (3, 6), (9, 1)]
    assert [(s.first_epoch, s.epochs) for s in scale_stages(stages, 4)] == [(0, 1), (1, 2), (3, 1)]
    assert [s.epochs for s in scale_stages(stages, 2)] == [1, 1]  # no room for the third
    assert scale_stages(stages, 100) == stages
    cfg = load_config(tiny_args + ["epochs=20", "augment.close_mosaic=5"], env={})
    assert plan_run(cfg, 16).mosaic_until == 15 and plan_run(cfg, 16, epochs=8).mosaic_until == 6
    # milestones are positions in the run: scaled with it, so they stay inside the fitted run
    cfg = load_config(
        tiny_args
        + [
            "epochs=20",
            "schedule.name=multistep",
            "schedule.milestones=[10, 15]",
            "schedule.warmup_epochs=0",
        ],
        env={},
    )
    sched = build_schedule_from_config(cfg, 4, epochs=8)
    assert sched.lr_factor(4 * 4 - 1) == 1.0 and sched.lr_factor(4 * 4 + 1) == pytest.approx(0.1)


def test_replan_rebuilds_a_loader_with_workers_when_close_mosaic_moves(tiny_args):
    """Loader workers hold a copy of the dataset: a moved close_mosaic epoch needs new ones."""
    from types import SimpleNamespace

    from detforge.engine.budget import replan
    from detforge.engine.distributed import DistInfo
    from detforge.engine.setup_data import build_data

    args = [a for a in tiny_args if not a.startswith(("epochs=", "workers="))]
    cfg = load_config(args + ["epochs=20", "augment.close_mosaic=10", "workers=1"], env={})
    data = build_data(cfg)  # the loader is not iterated: no worker starts
    plan = plan_run(cfg, len(data.train_set))
    tr = SimpleNamespace(
        cfg=cfg, data=data, plan=plan, dist=DistInfo(), epoch=1,
        schedule=build_schedule_from_config(cfg, plan.steps_per_epoch),
    )  # fmt: skip
    loader = data.train_loader
    replan(tr, 10)
    assert tr.plan.epochs == 10 and tr.schedule.total_steps == 10 * plan.steps_per_epoch
    assert data.train_set.mosaic_until_epoch == 5
    assert data.train_loader is not loader and data.train_loader.batch_size == loader.batch_size
    assert data.train_loader.dataset is data.train_set
    loader = data.train_loader
    replan(tr, 10)  # nothing moved: the loader (and its workers) stays
    assert data.train_loader is loader
