"""End-to-end training on a tiny dataset: run folder, checkpoints, resume, API."""

import csv

import numpy as np
import pytest
import torch
import yaml

from detforge.api import Detector
from detforge.config import load_config
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.hooks import Hook
from detforge.engine.trainer import Trainer


def _train(args, **extra):
    cfg = load_config(args + [f"{k}={v}" for k, v in extra.items()], env={})
    return Trainer(cfg).fit()


def test_run_folder_contents(tiny_args):
    res = _train(tiny_args)
    run = res.run_dir
    for f in [
        "config.yaml",
        "results.csv",
        "train.log",
        "weights/last.pt",
        "weights/best.pt",
        "val_gt.json",
        "val_predictions.json",
    ]:
        assert (run / f).is_file(), f
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in [
        "train/box",
        "train/cls",
        "train/dfl",
        "val/box",
        "lr/default/weights",
        "lr/default/norm",
        "lr/default/bias",
        "metrics/map50_95",
        "metrics/map50",
        "fitness",
        "epoch_time",
        "peak_mem_mb",
        "val_time",
        "grad_norm/mean",
        "grad_norm/max",
        "skipped_steps",
    ]:
        assert col in rows[0] and rows[0][col] != "", col
    assert float(rows[1]["peak_mem_mb"]) > 50
    # config.yaml is enough to repeat the run
    saved = load_config([], cfg_file=run / "config.yaml", env={})
    assert saved.train.epochs == 2 and saved.train.imgsz == 64
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["path"].endswith("data.yaml")
    ck = load_checkpoint(run / "weights" / "last.pt")
    assert ck["train"]["epoch"] == 2 and ck["train"]["step"] == 2 * 4
    assert ck["names"][0] == "circle" and ck["run_dir"] == str(run)
    assert set(res.metrics) >= {"map50_95", "map50", "map_small", "ar100"}


def test_detector_api_predicts_in_original_pixels(tiny_args, tiny_data):
    res = _train(tiny_args, epochs=1)
    det = Detector.load(res.run_dir / "weights" / "best.pt")
    img = np.full((100, 150, 3), 127, np.uint8)
    preds = det.predict([img, img], conf=0.0, max_det=5)
    assert len(preds) == 2 and preds[0].shape == (100, 150)
    assert len(preds[0]) == 5
    assert (preds[0].boxes[:, [0, 2]] <= 150).all() and (preds[0].boxes[:, [1, 3]] <= 100).all()
    assert np.allclose(preds[0].boxes, preds[1].boxes)


def _final_weights(run):
    return load_checkpoint(run / "weights" / "last.pt")["model"]


@pytest.mark.parametrize(
    "epochs, crash_at, where, extra",
    [
        (3, 7, (1, 2, 6), []),  # mid-epoch: after 6 of 12 steps, inside epoch 2
        # 6 epochs interrupted after 3, with a plateau schedule and early stopping whose state
        # must survive the restart
        (
            6,
            13,
            (3, 0, 12),
            [
                "schedule.name=plateau",
                "schedule.patience=1",
                "early_stop.patience=10",
                "schedule.warmup_epochs=1",
            ],
        ),
    ],
)
def test_resume_after_interruption_is_exact(tiny_args, monkeypatch, epochs, crash_at, where, extra):
    args = tiny_args + extra
    full = _train(args, name="full", epochs=epochs)

    calls = {"n": 0}
    real = torch.optim.SGD.step

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        _train(args, name="part", epochs=epochs)
    monkeypatch.setattr(torch.optim.SGD, "step", real)
    part = full.run_dir.parent / "part"
    ck = load_checkpoint(part / "weights" / "last.pt")
    t = ck["train"]
    assert (t["epoch"], t["batch_in_epoch"], t["step"]) == where

    resumed = _train(args, name="part", resume=part / "weights" / "last.pt", epochs=epochs)
    assert resumed.run_dir == part
    a, b = _final_weights(full.run_dir), _final_weights(part)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    rows = list(csv.DictReader((part / "results.csv").open()))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, epochs + 1)]
    full_ck, part_ck = (load_checkpoint(r / "weights" / "last.pt") for r in (full.run_dir, part))
    assert full_ck["train"]["schedule"] == part_ck["train"]["schedule"]
    assert full_ck["train"]["hooks"] == part_ck["train"]["hooks"]
    # the resumed epoch's row averages the whole epoch, as the uninterrupted run's does
    full_rows = list(csv.DictReader((full.run_dir / "results.csv").open()))
    for a_row, b_row in zip(full_rows, rows, strict=True):
        cols = [c for c in a_row if c.startswith(("train/", "grad_norm/", "metrics/", "lr/"))]
        assert {c: a_row[c] for c in cols} == {c: b_row[c] for c in cols}


def test_nonfinite_steps_are_skipped_then_stop_with_a_checkpoint(tiny_args, monkeypatch):
    from detforge.losses.detection import DetectionLoss

    real = DetectionLoss.compute
    calls = {"n": 0}

    def sometimes_nan(self, outputs, targets):
        calls["n"] += 1
        sums, mass = real(self, outputs, targets)
        if self.training_nan(calls["n"]):
            sums["box"] = sums["box"] * float("nan")
        return sums, mass

    # steps 2 and 3 are non-finite, then everything is finite again
    monkeypatch.setattr(DetectionLoss, "training_nan", lambda self, n: n in (2, 3), raising=False)
    monkeypatch.setattr(DetectionLoss, "compute", sometimes_nan)
    res = _train(tiny_args, epochs=1, **{"train.val_interval": 1})
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert rows[0]["skipped_steps"] == "2"
    ck = load_checkpoint(res.run_dir / "weights" / "last.pt")
    assert all(torch.isfinite(v.float()).all() for v in ck["model"].values())

    # from the second step on every step is non-finite: stop after 3 in a row
    monkeypatch.setattr(DetectionLoss, "training_nan", lambda self, n: n >= 2)
    calls["n"] = 0
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite steps"):
        _train(tiny_args, epochs=2, name="nan", **{"train.max_nonfinite": 3})
    ck = load_checkpoint(res.run_dir.parent / "nan" / "weights" / "last.pt")
    assert ck["train"]["step"] == 3
    assert all(torch.isfinite(v.float()).all() for v in ck["model"].values())


def test_early_stopping_and_periodic_checkpoints(tiny_args, caplog):
    caplog.set_level("INFO", logger="detforge")
    res = _train(
        tiny_args,
        epochs=5,
        **{"early_stop.patience": 1, "early_stop.min_delta": 10.0, "train.save_period": 1},
    )
    # the first validation improves on -inf, the second cannot improve by 10: stop after 2
    assert res.epochs_run == 2
    assert "early stopping: fitness has not improved by more than 10.0" in res.stop_reason
    assert "early stopping" in caplog.text
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert len(rows) == 2
    assert sorted(p.name for p in (res.run_dir / "weights").glob("epoch*.pt")) == [
        "epoch1.pt",
        "epoch2.pt",
    ]
    ck = load_checkpoint(res.run_dir / "weights" / "last.pt")
    early = ck["train"]["hooks"]["EarlyStopHook"]
    assert early["bad"] == 1 and early["best_epoch"] == 1


def test_recipe_layer_and_monitor_validation(tmp_path):
    from detforge.config import ConfigError

    own = tmp_path / "mine.yaml"
    own.write_text("model: {name: yolo-n-p2}\ntrain: {batch: 6}\n")
    cfg = load_config([f"recipe={own}", "batch=4"], env={})
    assert cfg.model.name == "yolo-n-p2" and cfg.train.batch == 4  # the command line wins
    with pytest.raises(ConfigError, match="did you mean 'finetune'"):
        load_config(["recipe=finetun"], env={})
    with pytest.raises(ConfigError, match="early_stop.monitor: cannot monitor 'map5'"):
        load_config(["early_stop.monitor=map5"], env={})


def _without_batchnorm(monkeypatch):
    """Build models whose BatchNorm layers are identities (BN sees micro-batches, so it is the
    one thing accumulation cannot reproduce)."""
    from torch import nn

    import detforge.models.factory as trainer_mod

    real = trainer_mod.build_model

    def build(name, nc, *args, **kwargs):
        m = real(name, nc, *args, **kwargs)
        for mod in list(m.modules()):
            for child_name, child in list(mod.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(mod, child_name, nn.Identity())
        return m

    monkeypatch.setattr(trainer_mod, "build_model", build)


def test_accumulation_matches_the_large_batch(tiny_args, monkeypatch):
    _without_batchnorm(monkeypatch)
    common = {"epochs": 1, "schedule.warmup_epochs": 0, "train.ema": "false"}
    big = _train(tiny_args, name="big", batch=16, **common)
    acc = _train(tiny_args, name="acc", batch=8, **{"train.accumulate": 2}, **common)
    nominal = _train(tiny_args, name="nom", batch=4, **{"train.nominal_batch": 16}, **common)
    a = _final_weights(big.run_dir)
    for other in (acc, nominal):
        b = _final_weights(other.run_dir)
        assert load_checkpoint(other.run_dir / "weights" / "last.pt")["train"]["step"] == 1
        for k in a:
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    # and the update is not trivially zero
    init = _train(tiny_args, name="init", batch=16, **common, **{"optim.lr0": 1e-12})
    assert any(
        not torch.allclose(a[k].float(), _final_weights(init.run_dir)[k].float(), atol=1e-4)
        for k in a
    )


def test_plateau_schedule_is_fed_the_validation_value(tiny_args):
    res = _train(
        tiny_args,
        epochs=3,
        **{
            "schedule.name": "plateau",
            "schedule.warmup_epochs": 0,
            "schedule.monitor": "val/loss",
            "schedule.patience": 0,
            "schedule.threshold": 10.0,  # nothing counts as an improvement after the first
            "schedule.factor": 0.5,
        },
    )
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    lrs = [float(r["lr/default/weights"]) for r in rows]
    # lr logged during epoch e; cuts happen after validations 1 and 2
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.005) and lrs[2] == pytest.approx(0.0025)
    # last.pt keeps the decision of the third validation too: a third cut, for a resume
    ck = load_checkpoint(res.run_dir / "weights" / "last.pt")
    plateau = ck["train"]["schedule"]["plateau"]
    assert plateau["reduction"] == pytest.approx(0.125) and plateau["observations"] == 3


def test_stages_and_multi_scale(tiny_args, caplog):
    from detforge.config import ConfigError

    caplog.set_level("INFO", logger="detforge")
    stages = "[{epochs: 1, imgsz: 32, batch: 8}, {epochs: 1, imgsz: 64}]"
    res = _train(
        tiny_args, epochs=2, **{"train.stages": stages, "augment.multi_scale": "[0.5, 1.5]"}
    )
    assert "stage: 64 px, batch 4 from epoch 2" in caplog.text
    ck = load_checkpoint(res.run_dir / "weights" / "last.pt")
    assert ck["train"]["step"] == 2 + 4  # 16 images: 2 batches of 8, then 4 batches of 4
    with pytest.raises(ConfigError, match=r"the stages have 3 epochs, train.epochs is 2"):
        load_config(tiny_args + ["train.stages=[{epochs: 3}]"], env={})
    with pytest.raises(ConfigError, match=r"train.stages\[0\]: unknown key 'imgz'"):
        load_config(tiny_args + ["train.stages=[{epochs: 2, imgz: 64}]"], env={})


def test_stage_change_keeps_the_image_cache(tiny_args):
    stages = "[{epochs: 1, imgsz: 32, batch: 8}, {epochs: 1, imgsz: 64}]"
    cfg = load_config(tiny_args + [f"train.stages={stages}", "data.cache=ram"], env={})
    seen = []

    class SeeTrainSet(Hook):
        def after_epoch(self, trainer):
            seen.append(trainer.data.train_set)

    Trainer(cfg, hooks=[SeeTrainSet()]).fit()
    assert [ds.imgsz for ds in seen] == [32, 64]
    cache = seen[0].image_cache
    assert cache is not None
    assert seen[1].image_cache is cache  # the second stage's new set reads the same RAM cache


def test_multi_scale_sizes_are_stride_multiples_in_range():
    import numpy as np

    from detforge.engine.stages import random_batch_size, resize_batch

    rng = np.random.default_rng(0)
    sizes = {random_batch_size(640, [0.5, 1.5], 32, rng) for _ in range(200)}
    assert min(sizes) >= 320 and max(sizes) <= 960 and all(s % 32 == 0 for s in sizes)
    assert len(sizes) > 10
    x = torch.zeros(1, 3, 64, 64)
    t = torch.tensor([[0, 1, 8.0, 16.0, 32.0, 48.0]])
    y, t2 = resize_batch(x, t, 32)
    assert y.shape[-2:] == (32, 32) and t2[0, 2:].tolist() == [4.0, 8.0, 16.0, 24.0]


def test_lone_last_image_is_dropped_not_a_batchnorm_crash(tiny_args):
    # 16 train images in batches of 5 leave one image over; at 32 px the stride-32 level is 1x1,
    # where BatchNorm cannot normalise a batch of one image. The lone image is dropped from the
    # epoch (a different one each epoch, the order is shuffled), and the plan counts 3 batches.
    from detforge.data.order import train_batches

    assert [train_batches(16, b) for b in (1, 4, 5, 6, 16, 17)] == [16, 4, 3, 3, 1, 1]
    res = _train(tiny_args, imgsz=32, batch=5, epochs=1)
    rows = list(csv.DictReader((res.run_dir / "results.csv").open()))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["train/box"]))
    ckpt = load_checkpoint(res.run_dir / "weights" / "last.pt")
    assert ckpt["train"]["step"] == 3
