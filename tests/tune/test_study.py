"""detforge tune: trials are run folders, pruning stops at the pruner's epoch, workers share one
journal and never exceed trials=N, a killed study resumes, best.yaml trains the winner."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

from detforge.cli.main import main
from detforge.config import ConfigError, load_config
from detforge.tune.space import parse_space
from detforge.tune.study import TuneOptions, Tuner

SPACE = "optim.lr0: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}\nloss.box: [5.0, 7.5]\n"


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _settings(tiny_args: list[str]) -> list[str]:
    """tiny_args for tune, where workers= is the number of processes."""
    return [a.replace("workers=", "data.workers=") for a in tiny_args]


def _args(tiny_args: list[str], tmp_path: Path) -> list[str]:
    (tmp_path / "space.yaml").write_text(SPACE)
    return [f"space={tmp_path / 'space.yaml'}", *_settings(tiny_args), "epochs=1", "pruner=none"]


def test_pruned_trial_stops_at_the_pruners_epoch(tiny_args, tmp_path):
    space = parse_space({"optim.lr0": [0.01]}, "p")
    opts = TuneOptions(space, [*tiny_args, "epochs=2"], trials=1)
    # fitness is at most 1, so a threshold of 2 prunes at the first report: epoch 1
    tuner = Tuner(opts, pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    tuner.run()
    study_dir = tmp_path / "runs" / "tune" / "p"
    (row,) = _rows(study_dir / "trials.csv")
    assert (row["state"], row["pruned_at"], row["epochs"]) == ("pruned", "1", "1")
    trial_dir = study_dir / "trial_000"
    assert len(_rows(trial_dir / "results.csv")) == 1  # epoch 2 never ran
    assert (trial_dir / "weights" / "last.pt").is_file()  # the folder is a consistent run
    assert (trial_dir / "reason.txt").read_text().startswith("pruned at epoch 1")
    assert not (study_dir / "best.yaml").exists()  # no complete trial


def test_two_workers_share_one_journal_and_run_exactly_n_trials(tiny_args, tmp_path):
    args = [*_args(tiny_args, tmp_path), "trials=3", "workers=2", "sampler=random"]
    assert main(["tune", *args]) == 0
    study_dir = tmp_path / "runs" / "tune" / "space"
    rows = _rows(study_dir / "trials.csv")
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert sorted(p.name for p in study_dir.glob("trial_*")) == [
        "trial_000", "trial_001", "trial_002",
    ]  # fmt: skip
    assert len({r["optim.lr0"] for r in rows}) == 3  # the workers sample with their own seeds
    for r in rows:  # each trial trained once, with its own parameters
        trial_dir = Path(r["run_dir"])
        assert len(_rows(trial_dir / "results.csv")) == 1
        cfg = load_config(cfg_file=trial_dir / "config.yaml")
        assert cfg.optim.lr0 == float(r["optim.lr0"]) and cfg.loss.box == float(r["loss.box"])
    study = optuna.load_study(study_name="space", storage=Tuner(
        TuneOptions(parse_space({"optim.lr0": [0.01]}), [*tiny_args], trials=1, study="space")
    ).storage())  # fmt: skip
    assert len(study.trials) == 3
    # best.yaml trains the winner at the settings' budget with its parameters
    best = min(rows, key=lambda r: (-float(r["fitness"]), int(r["trial"])))
    cfg = load_config(cfg_file=study_dir / "best.yaml")
    assert cfg.optim.lr0 == float(best["optim.lr0"]) and cfg.loss.box == float(best["loss.box"])
    assert cfg.train.epochs == 1 and cfg.train.imgsz == 64


def test_a_killed_study_resumes_and_requeues_the_interrupted_trial(tiny_args, tmp_path):
    args = [*_args(tiny_args, tmp_path), "trials=2", "sampler=random"]
    study_dir = tmp_path / "runs" / "tune" / "space"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "detforge.cli", "tune", *args], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(3000):  # until a trial is training (not a time limit on the code)
            if list(study_dir.glob("trial_*/train.log")) or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(["tune", *args]) == 0
    rows = _rows(study_dir / "trials.csv")
    died = [r for r in rows if "died during the trial" in r["reason"]]
    assert len(died) == 1, rows
    assert "queued again" in (Path(died[0]["run_dir"]) / "reason.txt").read_text()
    complete = [r for r in rows if r["state"] == "complete"]
    assert len(complete) == 2
    # the interrupted parameters ran again, once
    assert [r["optim.lr0"] for r in complete].count(died[0]["optim.lr0"]) == 1
    # running the finished study again starts no trial
    assert main(["tune", *args]) == 0
    assert len(_rows(study_dir / "trials.csv")) == len(rows)


def _kill_during_first_trial(args: list[str], study_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "detforge.cli", "tune", *args], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(3000):  # until a trial is training (not a time limit on the code)
            if list(study_dir.glob("trial_*/train.log")) or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_rdb_storage_fails_a_silent_trial_by_heartbeat_and_retries_it_once(tiny_args, tmp_path):
    """storage=sqlite:///... (an RDB storage, as postgresql://): a worker killed mid-trial stops
    its heartbeat; the next worker fails that trial, runs its parameters again once, and the
    study ends with trials=2 finished trials."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*_args(tiny_args, tmp_path), "trials=2", "sampler=random", f"storage={url}",
            "tune.heartbeat=1"]  # fmt: skip
    study_dir = tmp_path / "runs" / "tune" / "space"
    _kill_during_first_trial(args, study_dir)
    assert main(["tune", *args]) == 0
    rows = _rows(study_dir / "trials.csv")
    assert [r["state"] for r in rows] == ["fail", "complete", "complete"], rows
    dead = rows[0]
    # the retry is trial 1 when the heartbeat was already stale as the second worker started,
    # else trial 2 (the second worker ran a new trial first)
    trials = optuna.load_study(study_name="space", storage=url).trials
    (retry,) = [t.number for t in trials if t.system_attrs.get("retry_history") == [0]]
    assert dead["reason"].startswith("failed: no heartbeat, its worker died during the trial")
    assert dead["reason"].endswith(f"its parameters are queued again (trial {retry})")
    assert "no heartbeat for 2 s" in (study_dir / "trial_000" / "reason.txt").read_text()
    again = rows[retry]
    assert (again["optim.lr0"], again["loss.box"]) == (dead["optim.lr0"], dead["loss.box"])
    # the finished study starts nothing more, and journal-only settings are refused
    assert main(["tune", *args]) == 0
    assert len(_rows(study_dir / "trials.csv")) == 3
    with pytest.raises(ConfigError, match="tune.heartbeat: only with storage=URL"):
        Tuner(TuneOptions(parse_space({"optim.lr0": [0.01]}), _settings(tiny_args), trials=1,
                          heartbeat=5))  # fmt: skip


def test_a_crashing_trial_fails_alone(tiny_args, tmp_path, monkeypatch):
    import detforge.tune.trial as trial_mod

    calls = []

    class Boom(trial_mod.Trainer):
        def fit(self):
            calls.append(self.cfg.train.name)
            if len(calls) == 1:
                raise RuntimeError("out of memory")
            return super().fit()

    monkeypatch.setattr(trial_mod, "Trainer", Boom)
    space = parse_space({"optim.lr0": [0.01, 0.02]}, "c")
    Tuner(TuneOptions(space, [*tiny_args, "epochs=1"], pruner="none")).run()
    rows = _rows(tmp_path / "runs" / "tune" / "c" / "trials.csv")
    assert [r["state"] for r in rows] == ["fail", "complete"]
    assert rows[0]["reason"] == "failed: RuntimeError: out of memory"
    reason = (tmp_path / "runs" / "tune" / "c" / "trial_000" / "reason.txt").read_text()
    assert "Traceback" in reason


def test_bad_space_fails_before_any_trial(tiny_args, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("optim.lr: [0.1, 0.2]\n")
    assert main(["tune", f"space={tmp_path / 'bad.yaml'}", *_settings(tiny_args), "trials=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optim.lr' (did you mean 'optim.lr0'?)" in err
    assert not (tmp_path / "runs").exists()


def test_spaces_lists_the_shipped_spaces(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ["grid-lr-warmup", "grid-box-dfl", "grid-scale-copypaste", "tpe-5"]:
        assert name in out


def test_kfold_trials_score_the_mean_over_folds_and_prune_after_a_fold(tiny_args, tmp_path):
    """tune.kfold=K: a trial is a k-fold run in its folder, its fitness the mean of the folds'
    fitness; a pruner that prunes at the first report stops it after fold 1."""

    from detforge.engine.fitness import fitness

    space = parse_space({"optim.lr0": [0.01]}, "kf")
    opts = TuneOptions(space, [*_settings(tiny_args), "epochs=1"], trials=1, kfold=2)
    Tuner(opts, pruner=optuna.pruners.NopPruner()).run()
    study_dir = tmp_path / "runs" / "tune" / "kf"
    (row,) = _rows(study_dir / "trials.csv")
    trial_dir = study_dir / "trial_000"
    folds = [json.loads((trial_dir / f"fold{i}" / "fold_result.json").read_text()) for i in (0, 1)]
    weights = load_config(tiny_args, env={}).train.fitness
    mean = sum(fitness(f["metrics"], weights) for f in folds) / 2
    assert row["state"] == "complete" and abs(float(row["fitness"]) - mean) < 1e-9
    assert (trial_dir / "summary.json").is_file()  # the trial's k-fold summary

    space = parse_space({"optim.lr0": [0.02]}, "kp")
    opts = TuneOptions(space, [*_settings(tiny_args), "epochs=1"], trials=1, kfold=2)
    Tuner(opts, pruner=optuna.pruners.ThresholdPruner(lower=2.0)).run()
    study_dir = tmp_path / "runs" / "tune" / "kp"
    (row,) = _rows(study_dir / "trials.csv")
    assert (row["state"], row["pruned_at"]) == ("pruned", "1")
    trial_dir = study_dir / "trial_000"
    assert (trial_dir / "fold0" / "fold_result.json").is_file()
    assert not (trial_dir / "fold1").exists()  # fold 2 never trained
    assert (trial_dir / "reason.txt").read_text().startswith("pruned after fold 1 of 2")


def test_low_fidelity_trials_and_a_full_budget_best_yaml(tiny_args, tmp_path, caplog):
    """tune.epochs/fraction/imgsz change the trials only: each trial's saved settings have them
    and it trains on the stratified fraction; best.yaml keeps the study's epochs, data, size."""
    space = parse_space({"optim.lr0": [0.01]}, "lf")
    settings = [*_settings(tiny_args), "epochs=3", "imgsz=96"]
    opts = TuneOptions(space, settings, trials=1, pruner="none", epochs=1, fraction=0.5, imgsz=64)
    with caplog.at_level(logging.INFO, logger="detforge"):
        Tuner(opts).run()
    study_dir = tmp_path / "runs" / "tune" / "lf"
    (row,) = _rows(study_dir / "trials.csv")
    assert (row["state"], row["epochs"]) == ("complete", "1")
    trial = load_config(cfg_file=study_dir / "trial_000" / "config.yaml")
    assert (trial.train.epochs, trial.data.fraction, trial.train.imgsz) == (1, 0.5, 64)
    assert "data.fraction 0.5: training on 9 of 16 images" in caplog.text
    best = load_config(cfg_file=study_dir / "best.yaml")
    assert (best.train.epochs, best.data.fraction, best.train.imgsz) == (3, 1.0, 96)


def test_bad_low_fidelity_settings_are_named(tiny_args, tmp_path, capsys):
    space = parse_space({"optim.lr0": [0.01]}, "bad")
    for kw, message in [
        ({"fraction": 0.0}, "tune.fraction: 0.0 must be in (0, 1]"),
        ({"fraction": 1.5}, "tune.fraction: 1.5 must be in (0, 1]"),
        ({"imgsz": 100}, "tune.imgsz: 100 is not a positive multiple of the model stride 32"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            Tuner(TuneOptions(space, _settings(tiny_args), trials=1, **kw))
    sized = parse_space({"train.imgsz": [32, 64]}, "sized")
    with pytest.raises(ConfigError, match="space key train.imgsz: the study sets it"):
        Tuner(TuneOptions(sized, _settings(tiny_args), trials=1, imgsz=32))
    (tmp_path / "s.yaml").write_text(SPACE)
    args = ["tune", f"space={tmp_path / 's.yaml'}", *_settings(tiny_args), "trials=1"]
    assert main([*args, "tune.imgsz=48"]) == 2
    err = capsys.readouterr().err
    assert "tune.imgsz must be a positive multiple of the model stride 32" in err
    assert main([*args, "tune.fraction=2"]) == 2
    assert "tune.fraction must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_final_retrains_the_best_at_the_full_budget_once(tiny_args, tmp_path, capsys, monkeypatch):
    """final=true: the best trial's settings train again at the study's epochs, data and size
    into final/ and are validated; running the finished study again does not retrain."""
    import detforge.tune.final as final_mod

    (tmp_path / "g.yaml").write_text("optim.lr0: [0.01, 0.02]\n")
    args = ["tune", f"space={tmp_path / 'g.yaml'}", *_settings(tiny_args), "epochs=2",
            "imgsz=96", "pruner=none", "tune.epochs=1", "tune.imgsz=64", "tune.fraction=0.5",
            "final=true"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    study_dir = tmp_path / "runs" / "tune" / "g"
    rows = _rows(study_dir / "trials.csv")
    best = min(rows, key=lambda r: (-float(r["fitness"]), int(r["trial"])))
    final_dir = study_dir / "final"
    cfg = load_config(cfg_file=final_dir / "config.yaml")
    assert (cfg.train.epochs, cfg.train.imgsz, cfg.data.fraction) == (2, 96, 1.0)
    assert cfg.optim.lr0 == float(best["optim.lr0"])
    assert len(_rows(final_dir / "results.csv")) == 2
    rec = json.loads((final_dir / "final.json").read_text())
    assert (rec["state"], rec["trial"], rec["epochs"]) == ("complete", int(best["trial"]), 2)
    line = f"final: trial {best['trial']}'s settings at the full budget (2 epochs, imgsz 96): "
    assert line + f"map50_95 {rec['metrics']['map50_95']:.4f}" in out
    report = (study_dir / "report.html").read_text()
    section = report[report.index("<h2>Final run</h2>") :]
    assert f"Trial {best['trial']}'s settings at the full budget" in section
    assert "<th>map50_95</th>" in section and "<td>2</td>" in section  # 2 epochs
    assert f"<td>{rec['metrics']['map50_95']:.4g}</td>" in section

    def no_training(*a, **k):
        raise AssertionError("the final run trained again")

    monkeypatch.setattr(final_mod, "Trainer", no_training)
    assert main(args) == 0
    assert line in capsys.readouterr().out

    # a final run claimed by a live worker (here: this test's parent process) is left to it
    tuner = Tuner(TuneOptions(parse_space({"optim.lr0": [0.01, 0.02]}, "g"), _settings(tiny_args)))
    study = optuna.load_study(study_name="g", storage=tuner.storage())
    parent = psutil.Process(os.getppid())
    worker = {"host": socket.gethostname(), "pid": parent.pid, "started": parent.create_time()}
    study.set_user_attr("final", {**rec, "state": "running", "worker": worker})
    assert main(args) == 0
    assert f"being trained by worker {parent.pid}" in capsys.readouterr().out


def test_workers_that_open_a_study_together_draw_different_parameters(tiny_args, tmp_path):
    """Two commands on one RDB storage (both worker 0, as on two machines) that open the study
    at the same time: each ask is seeded by the trials before it, so their first trials differ;
    the same asks in one worker give the same parameters again."""
    space = parse_space({"optim.lr0": {"type": "float", "low": 1e-3, "high": 1e-1}}, "s")

    def tuner(url: str) -> Tuner:
        return Tuner(TuneOptions(space, _settings(tiny_args), trials=4, sampler="random",
                                 storage=url))  # fmt: skip

    def draws(url: str, pairs: int) -> list[float]:
        a, b = tuner(url), tuner(url)
        sa, sb = a.open(), b.open()  # both see an empty study
        out = []
        for _ in range(pairs):
            for t, s in ((a, sa), (b, sb)):
                trial, _ = t._next_trial(s)
                out.append(space.suggest(trial)["optim.lr0"])
        return out

    first = draws(f"sqlite:///{tmp_path / 'one.db'}", 2)
    assert len(set(first)) == 4
    assert draws(f"sqlite:///{tmp_path / 'two.db'}", 2) == first
