"""Resume from any configuration layer, into the right folder; failed starts; SIGTERM."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from detforge.config import ConfigError, load_config
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.hooks import Hook
from detforge.engine.resume import load_train_config
from detforge.engine.stepper import Stepper
from detforge.engine.trainer import Trainer


class StopAfterFirst(Hook):
    def after_epoch(self, trainer):
        trainer.request_stop("test stop")


def _fit(args, hooks=(), **kw):
    cfg = load_config(args + [f"{k}={v}" for k, v in kw.items()], env={})
    return Trainer(cfg, hooks=hooks).fit()


@pytest.fixture
def stopped_run(tiny_args):
    """A 2-epoch run stopped after epoch 1 (a resumable last.pt)."""
    return _fit(tiny_args, [StopAfterFirst()], **{"optim.lr0": 0.02, "name": "first"})


def test_resume_from_a_cfg_file_or_env_takes_the_checkpoint_config(stopped_run, tmp_path):
    last = stopped_run.run_dir / "weights" / "last.pt"
    cfg_file = tmp_path / "resume.yaml"
    cfg_file.write_text(yaml.safe_dump({"train": {"resume": str(last)}}))
    for cfg in (
        load_train_config([], cfg_file=cfg_file, env={}),
        load_train_config([], env={"DETFORGE_TRAIN__RESUME": str(last)}),
        load_train_config({"resume": str(last), "epochs": 3}, env={}),
    ):
        assert cfg.train.resume == str(last)
        assert cfg.optim.lr0 == 0.02 and cfg.train.imgsz == 64  # not the defaults
    assert cfg.train.epochs == 3  # what the user gives still wins


def test_a_loose_checkpoint_starts_a_new_run_folder(stopped_run, tmp_path, caplog):
    caplog.set_level("INFO", logger="detforge")
    loose = tmp_path / "elsewhere" / "moved.pt"
    loose.parent.mkdir()
    shutil.copy(stopped_run.run_dir / "weights" / "last.pt", loose)
    cfg = load_train_config([f"resume={loose}", "name=again", "epochs=3"], env={})
    res = Trainer(cfg).fit()
    assert res.run_dir == stopped_run.run_dir.parent / "again"
    assert "continuing in a new run folder" in caplog.text
    assert not (tmp_path / "results.csv").exists()  # nothing written next to the checkpoint
    for f in ("weights/best.pt", "weights/last.pt", "results.csv", "val_predictions.json"):
        assert (res.run_dir / f).is_file(), f
    assert "resume: train.epochs 2 -> 3; the schedule is re-planned: 3 epochs" in caplog.text


def test_a_failed_start_leaves_no_run_folder(tiny_args, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="optim.unfreeze_at"):
        _fit(tiny_args, **{"optim.unfreeze_at": 1})
    bad = tmp_path / "bad.yaml"
    bad.write_text("path: .\ntrain: images/none\nval: images/none\nnames: [a]\n")
    with pytest.raises(Exception, match="images/none"):
        _fit(tiny_args, data=bad)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_an_error_after_the_folder_exists_is_in_its_log(tiny_args, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="detforge")

    def boom(self, *a, **k):
        raise RuntimeError("boom in the step")

    monkeypatch.setattr(Stepper, "step", boom)
    with pytest.raises(RuntimeError):
        _fit(tiny_args, name="fails")
    log = (tmp_path / "runs" / "fails" / "train.log").read_text()
    assert "model yolo-n" in log  # set-up lines written before the folder existed are kept
    assert "RuntimeError: boom in the step" in log


def test_sigterm_saves_a_resumable_checkpoint(tiny_args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETFORGE_")}
    args = [a for a in tiny_args if not a.startswith("epochs=")] + ["epochs=200", "name=term"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "detforge.cli", "train", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    results = tmp_path / "runs" / "term" / "results.csv"
    try:
        while not results.exists() and proc.poll() is None:
            time.sleep(0.2)  # training has finished an epoch: SIGTERM lands mid-run
        assert proc.poll() is None, proc.stdout.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "SIGTERM received); checkpoint saved" in out
    last = tmp_path / "runs" / "term" / "weights" / "last.pt"
    ck = load_checkpoint(last)
    assert 1 <= ck["train"]["epoch"] < 200
    resumed = Trainer(
        load_train_config([f"resume={last}", "epochs=" + str(ck["train"]["epoch"] + 1)], env={})
    ).fit()
    assert resumed.epochs_run == ck["train"]["epoch"] + 1


def test_load_train_config_logs_short_run_fits_when_not_asked_for_notes(caplog):
    """kfold builds its fold configs through load_train_config without notes: the short-run
    note must still be logged (it was swallowed)."""
    import logging

    from detforge.engine.resume import load_train_config

    with caplog.at_level(logging.INFO, logger="detforge"):
        cfg = load_train_config(["epochs=2"], env={})
    assert cfg.schedule.warmup_epochs < 3
    assert any("short run of 2 epochs" in r.getMessage() for r in caplog.records)
    notes: list = []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="detforge"):
        load_train_config(["epochs=2"], env={}, notes=notes)
    assert notes and not any("short run" in r.getMessage() for r in caplog.records)
