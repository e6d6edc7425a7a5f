"""Hook events, their order, the exception event, and hook state through a resume."""

import pytest

import detforge
from detforge.config import load_config
from detforge.engine.hooks import Hook, build_hooks, hook_keys
from detforge.engine.stepper import Stepper
from detforge.engine.trainer import Trainer


class Recorder(Hook):
    def __init__(self):
        self.events = []

    def before_train(self, trainer):
        self.events.append("before_train")

    def before_epoch(self, trainer):
        self.events.append(f"before_epoch {trainer.epoch}")

    def before_step(self, trainer):
        self.events.append(f"before_step {trainer.step}")

    def after_step(self, trainer):
        self.events.append(f"after_step {trainer.step}")

    def after_epoch(self, trainer):
        self.events.append(f"after_epoch {trainer.epoch} {trainer.row['epoch']}")

    def after_train(self, trainer):
        self.events.append("after_train")

    def on_exception(self, trainer, exc):
        self.events.append(f"on_exception {type(exc).__name__}")


def _fit(args, hooks=(), **extra):
    cfg = load_config(args + [f"{k}={v}" for k, v in extra.items()], env={})
    return Trainer(cfg, hooks=hooks).fit()


def test_events_in_order_per_optimizer_step(tiny_args):
    rec = Recorder()
    # 16 images, batch 4, accumulate 2: 2 optimizer steps per epoch
    _fit(tiny_args, [rec], **{"train.accumulate": 2})
    epoch = lambda e: [  # noqa: E731
        f"before_epoch {e}",
        f"before_step {2 * e}", f"after_step {2 * e + 1}",
        f"before_step {2 * e + 1}", f"after_step {2 * e + 2}",
        f"after_epoch {e + 1} {e + 1}",
    ]  # fmt: skip
    assert rec.events == ["before_train", *epoch(0), *epoch(1), "after_train"]


def test_on_exception_when_a_step_raises(tiny_args, monkeypatch):
    rec = Recorder()
    real = Stepper.step
    calls = {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("step failed")
        return real(self, *a, **k)

    monkeypatch.setattr(Stepper, "step", failing)
    with pytest.raises(RuntimeError, match="step failed"):
        _fit(tiny_args, [rec])
    assert rec.events == [
        "before_train", "before_epoch 0", "before_step 0", "after_step 1", "before_step 1",
        "on_exception RuntimeError",
    ]  # fmt: skip
    log = (tiny_args_run_dir(tiny_args) / "train.log").read_text()
    assert "RuntimeError: step failed" in log  # the error is in the run's log


def tiny_args_run_dir(args):
    project = next(a.split("=", 1)[1] for a in args if a.startswith("project="))
    from pathlib import Path

    (run,) = Path(project).iterdir()
    return run


def test_hooks_must_be_hook_instances_and_are_ordered(tiny_args):
    with pytest.raises(TypeError, match="is not a detforge.Hook"):
        Trainer(load_config(tiny_args, env={}), hooks=[lambda tr, row: None])
    assert detforge.Hook is Hook and Hook.main_process_only
    cfg = load_config(tiny_args, env={})
    names = hook_keys(build_hooks(cfg, [Recorder(), Recorder()]))
    assert names == [
        "FreezeHook", "StageHook", "LastCheckpointHook", "ValidationHook", "PlateauHook",
        "EarlyStopHook", "ResultsHook", "FinishHook", "Recorder", "Recorder#2",
        "EpochCheckpointHook",
    ]  # fmt: skip


class Counter(Hook):
    """Counts epochs; its count must survive a resume. Asks to stop after ``stop_at``."""

    def __init__(self, stop_at=None):
        self.count, self.stop_at, self.at_start = 0, stop_at, None

    def before_train(self, trainer):
        self.at_start = self.count

    def after_epoch(self, trainer):
        self.count += 1
        if self.count == self.stop_at:
            trainer.request_stop("counter says stop")

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_user_hook_state_comes_back_through_resume(tiny_args, caplog):
    first = Counter(stop_at=2)
    res = _fit(tiny_args, [first], epochs=3, name="count")
    assert res.epochs_run == 2 and res.stop_reason == "counter says stop"
    last = res.run_dir / "weights" / "last.pt"
    again = Counter()
    resumed = _fit(tiny_args, [again], epochs=3, name="count", resume=last)
    assert resumed.run_dir == res.run_dir and resumed.epochs_run == 3
    assert again.at_start == 2 and again.count == 3
    # a resume without the hook says its saved state is left unused
    caplog.set_level("WARNING", logger="detforge")
    _fit(tiny_args, [], epochs=3, name="count", resume=last)
    assert "holds state of hook(s) Counter that this run does not have" in caplog.text
