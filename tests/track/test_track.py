"""Experiment tracking (track/): offline TensorBoard, MLflow and W&B runs with stdin closed and
no network, MLflow metrics equal to results.csv, a failing tracker switched off with one
warning and no effect on training, no tracker imported unless asked for."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detforge.config import ConfigError, load_config

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMING = {"epoch_time", "val_time", "peak_mem_mb"}  # wall-clock columns differ run to run


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    dead = "http://127.0.0.1:9"  # discard port: any connection attempt fails at once
    env.update(PYTHONPATH=SRC, HOME=str(tmp_path / "home"), HTTP_PROXY=dead, HTTPS_PROXY=dead,
               http_proxy=dead, https_proxy=dead, NO_PROXY="", no_proxy="")  # fmt: skip
    return env


def test_three_trackers_offline_with_stdin_closed(tiny_args, tmp_path):
    args = [*tiny_args, "track=tensorboard,mlflow,wandb", "track.every_steps=2"]
    proc = subprocess.run(
        [sys.executable, "-m", "detforge.cli", "train", *args], stdin=subprocess.DEVNULL,
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "track:" not in proc.stderr  # no tracker failed
    run = tmp_path / "runs" / "train"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run / "wandb").glob("offline-run-*"))

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run / 'mlflow.db'}")
    (mlrun,) = client.search_runs([client.get_experiment_by_name("detforge").experiment_id])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["train.epochs"] == "2"
    rows = _rows(run)
    assert len(rows) == 2
    for key in rows[0]:
        if key == "epoch" or rows[0][key] == "":
            continue
        history = client.get_metric_history(mlrun.info.run_id, key)
        logged = {m.step: m.value for m in history}
        expected = {int(r["epoch"]): float(r[key]) for r in rows}
        assert logged.keys() == expected.keys(), key
        for step, v in expected.items():
            assert logged[step] == pytest.approx(v, rel=1e-5, abs=1e-12), key
    steps = [m.step for m in client.get_metric_history(mlrun.info.run_id, "step/box")]
    assert steps and all(s % 2 == 0 for s in steps)
    assert {"step/grad_norm", "step/lr/default/weights"} <= set(mlrun.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"results.csv", "weights"} <= artifacts


def test_failing_tracker_is_switched_off_and_training_unchanged(
    tiny_args, tmp_path, caplog, monkeypatch
):
    from detforge.api import train
    from detforge.track.hooks import TensorBoardHook

    def settings(project: str, *extra: str):
        cfg = [a for a in tiny_args if not a.startswith("project=")]
        return load_config([*cfg, f"project={tmp_path / project}", *extra])

    plain = train(verbose=False, config=settings("plain"))
    calls = {"n": 0}

    def broken(self, values, step):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(TensorBoardHook, "scalars", broken)
    monkeypatch.setitem(sys.modules, "wandb", None)  # the package is missing
    caplog.set_level(logging.WARNING, "detforge")
    tracked = train(config=settings("tracked", "track=tensorboard,wandb", "track.every_steps=1"))
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("track:")]
    assert len(warnings) == 2, warnings
    assert any("tensorboard failed" in w and "No space left" in w for w in warnings)
    assert any("wandb failed" in w and "wandb" in w for w in warnings)
    assert calls["n"] == 2  # off after its failure: never called again
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in _rows(plain.run_dir)]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING}
                     for r in _rows(tracked.run_dir)]  # fmt: skip
    assert tracked.metrics == plain.metrics


def test_no_tracker_is_imported_unless_asked(tiny_args, tmp_path):
    code = (
        "import sys, detforge\n"
        "from detforge.config import load_config\n"
        f"detforge.train(verbose=False, config=load_config({[*tiny_args, 'epochs=1']!r}))\n"
        "loaded = [m for m in ('mlflow', 'wandb', 'tensorboard', 'torch.utils.tensorboard')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_offline_env(tmp_path),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_track_settings_are_checked_and_never_ignored(tiny_args):
    from detforge.engine.trainer import Trainer
    from detforge.track import tracking_hooks

    cfg = load_config([*tiny_args, "track=mlflow,tensorboard"])
    assert cfg.track.loggers == ["mlflow", "tensorboard"]
    assert [h.tracker for h in tracking_hooks(cfg)] == ["mlflow", "tensorboard"]
    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        load_config(["track=tensorbord"])
    with pytest.raises(ConfigError, match="track.loggers: a Trainer built directly"):
        Trainer(cfg)


def _mlflow_runs(store: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {store}"
    return client.search_runs([exp.experiment_id])


def test_tune_trials_and_kfold_folds_are_grouped_runs(tiny_args, tmp_path, monkeypatch):
    """The trials of a study and the folds of a k-fold land in one MLflow experiment (one
    store in their folder) and one W&B group; tune with track= ran no tracker before (a
    Trainer with track.loggers and no tracker hooks is an error)."""
    from detforge.cli.main import main

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = [a.replace("workers=", "data.workers=") for a in tiny_args]
    (tmp_path / "space.yaml").write_text("optim.lr0: [0.01, 0.02]\n")
    args = [f"space={tmp_path / 'space.yaml'}", *settings, "epochs=1", "pruner=none"]
    assert main(["tune", *args, "trials=2", "track=mlflow"]) == 0
    study = tmp_path / "runs" / "tune" / "space"
    runs = _mlflow_runs(study, "detforge/tune/space")
    assert sorted(r.info.run_name for r in runs) == ["trial_000", "trial_001"]
    assert {r.data.tags["detforge.group"] for r in runs} == {"tune/space"}
    assert not (study / "trial_000" / "mlflow.db").exists()

    kargs = [*tiny_args, "epochs=1", "k=2", "track=mlflow"]
    assert main(["kfold", *kargs]) == 0
    folder = tmp_path / "runs" / "kfold" / "cv"
    runs = _mlflow_runs(folder, "detforge/kfold/cv")
    assert sorted(r.info.run_name for r in runs) == ["fold0", "fold1"]


def test_wandb_runs_of_a_group_share_the_group(tiny_args, monkeypatch):
    import sys as _sys
    import types
    from pathlib import Path as _Path

    from detforge.track.hooks import WandbHook

    seen = {}
    fake = types.SimpleNamespace(
        init=lambda **kw: seen.update(kw) or types.SimpleNamespace(finish=lambda **k: None),
        Settings=lambda **kw: kw,
    )
    monkeypatch.setitem(_sys.modules, "wandb", fake)
    cfg = load_config([*tiny_args, "track=wandb"], env={})
    hook = WandbHook(cfg, "kfold/cv")
    hook.start(_Path("/tmp/x/fold0"), {})
    assert seen["group"] == "kfold/cv" and seen["name"] == "fold0"
