"""k-fold runs (crossval/): an interrupted k-fold resumes with finished folds skipped, folds run
by separate invocations aggregate to the single-invocation summary, the summary's files."""

from __future__ import annotations

import json
import logging

import pytest

from detforge.cli.main import main
from detforge.config import ConfigError
from detforge.crossval.kfold import run_kfold
from detforge.engine.hooks import Hook


def _settings(tiny_args, project):
    # one epoch per fold; the project is where the k-fold folder goes
    out = [a for a in tiny_args if not a.startswith(("epochs=", "project="))]
    return [*out, "epochs=1", f"project={project}"]


class Interrupt(Hook):
    """Ctrl-C in the second optimizer step of the fold it is given to."""

    def after_step(self, trainer):
        if trainer.step == 2:
            raise KeyboardInterrupt


def _same_summary(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["per_class"] == b["per_class"]
    assert a["out_of_fold"] == b["out_of_fold"]
    assert a["folds"] == b["folds"]


def test_separate_invocations_aggregate_to_the_single_run(tiny_args, tmp_path, caplog):
    caplog.set_level(logging.INFO, "detforge")
    whole = run_kfold(_settings(tiny_args, tmp_path / "a"), 2, seed=3)
    assert whole.ran == [0, 1] and whole.summary is not None
    folder = whole.folder
    assert folder == tmp_path / "a" / "kfold" / "cv"
    for f in ("summary.json", "summary.csv", "folds.png", "oof_gt.json", "oof_predictions.json"):
        assert (folder / f).is_file(), f
    s = whole.summary
    assert set(s["metrics"]) >= {"map50", "map50_95"} and s["k"] == 2
    fold_map = [f["metrics"]["map50_95"] for f in s["folds"]]
    assert s["metrics"]["map50_95"]["mean"] == pytest.approx(sum(fold_map) / 2)
    # pooled out-of-fold: every image scored once, by the fold that did not train on it
    assert s["out_of_fold"]["images"] == 24
    csv = (folder / "summary.csv").read_text()
    assert csv.startswith("metric,mean,std,fold0,fold1") and "oof/map50_95" in csv

    base = [*_settings(tiny_args, tmp_path / "b"), "k=2", "seed=3"]
    assert main(["kfold", *base, "folds=0"]) == 0
    assert not (tmp_path / "b" / "kfold" / "cv" / "summary.json").exists()
    with pytest.raises(ConfigError, match="fold.s. 1 .* not finished"):
        run_kfold(_settings(tiny_args, tmp_path / "b"), 2, seed=3, aggregate=True)
    assert main(["kfold", *base, "folds=1"]) == 0  # all present: aggregated automatically
    split = json.loads((tmp_path / "b" / "kfold" / "cv" / "summary.json").read_text())
    _same_summary(split, json.loads(json.dumps(s)))
    again = run_kfold(_settings(tiny_args, tmp_path / "b"), 2, seed=3, aggregate=True)
    assert again.ran == [] and again.summary == split


def test_interrupted_kfold_resumes_and_skips_finished_folds(tiny_args, tmp_path, caplog):
    settings = _settings(tiny_args, tmp_path / "runs")
    run_kfold(settings, 2, folds=[0])
    with pytest.raises(KeyboardInterrupt):
        run_kfold(settings, 2, hooks=[Interrupt()])
    folder = tmp_path / "runs" / "kfold" / "cv"
    assert (folder / "fold1" / "weights" / "last.pt").is_file()
    assert not (folder / "fold1" / "fold_result.json").exists()
    fold0 = (folder / "fold0" / "fold_result.json").read_text()
    caplog.clear()
    caplog.set_level(logging.INFO, "detforge")
    result = run_kfold(settings, 2)
    assert result.skipped == [0] and result.ran == [1] and result.summary is not None
    assert "fold 1/2 already finished, skipped" in caplog.text
    assert "resumed from" in caplog.text and "fold 2/2 (" in caplog.text
    assert (folder / "fold0" / "fold_result.json").read_text() == fold0
    # the resumed fold equals an uninterrupted one
    fresh = run_kfold(_settings(tiny_args, tmp_path / "fresh"), 2)
    assert result.summary["folds"] == fresh.summary["folds"]


def test_kfold_errors_name_the_setting(tiny_args, tmp_path):
    with pytest.raises(ConfigError, match="folds: \\[5\\] out of range for k=2"):
        run_kfold(_settings(tiny_args, tmp_path), 2, folds=[5])
    assert main(["kfold", *_settings(tiny_args, tmp_path), "k=1"]) == 2
