"""One run plan: the trainer, ``detforge schedule`` and lr-find count steps the same way."""

import detforge.engine.schedule_plot as schedule_plot
import detforge.engine.tools as tools
from detforge.config import load_config
from detforge.engine.plan import plan_run
from detforge.engine.stepper import Stepper

STAGES = "[{epochs: 1, imgsz: 32, batch: 8}, {epochs: 1, imgsz: 64}]"


def test_plan_counts_steps_per_stage(tiny_args):
    cfg = load_config(tiny_args + [f"train.stages={STAGES}", "train.accumulate=2"], env={})
    plan = plan_run(cfg, 16)
    assert list(plan.steps) == [1, 2] and plan.steps_per_epoch == 1 and plan.schedule_steps == 2
    assert "epochs 2-2: 64 px, batch 4, 2 optimizer steps per epoch" in plan.describe()
    plan = plan_run(load_config(tiny_args + [f"train.stages={STAGES}"], env={}), 16)
    # half-way through epoch 2 (2 of its 4 steps) is virtual step 3 on the 2-step grid
    assert list(plan.steps) == [2, 4] and plan.schedule_step(1, 2) == 3


def test_schedule_command_follows_the_stages(tiny_args, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="detforge")
    seen = {}
    monkeypatch.setattr(schedule_plot, "plot_schedule", lambda cfg, **kw: seen.update(kw))
    cfg = load_config(tiny_args + [f"train.stages={STAGES}"], env={})
    tools.plot_schedule_from_config(cfg, tmp_path / "lr.png")
    # the trainer's grid: 16 images in batches of 8 (the first stage), not of train.batch=4
    assert seen["steps_per_epoch"] == 2 and seen["epochs"] == 2
    assert "epochs 1-1: 32 px, batch 8, 2 optimizer steps per epoch" in caplog.text
    assert "epochs 2-2: 64 px, batch 4, 4 optimizer steps per epoch" in caplog.text


def test_lr_find_steps_through_the_training_stepper(tiny_args, monkeypatch):
    calls = []
    real_fb, real_step = Stepper.forward_backward, Stepper.step

    def fb(self, x, targets, sync=True):
        calls.append(("fb", sync))
        return real_fb(self, x, targets, sync)

    def step(self, mass, images, index):
        calls.append(("step", images, self.clipper.mode))
        return real_step(self, mass, images, index)

    monkeypatch.setattr(Stepper, "forward_backward", fb)
    monkeypatch.setattr(Stepper, "step", step)
    cfg = load_config(tiny_args + ["train.accumulate=2", "clip.mode=value"], env={})
    result = tools.lr_find_from_config(cfg, iters=3, start_lr=1e-6, end_lr=1e-4)[0]
    assert len(result.lrs) == 3
    # accumulation as in training: two micro-batches per step, only the last one syncs
    assert calls == [("fb", False), ("fb", True), ("step", 8, "value")] * 3
