"""task=classify through the same Trainer: learning, exact resume, plateau on val/loss,
settings of the other task refused by name, val/predict on the checkpoint."""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from detforge.config import ConfigError, load_config
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.hooks import Hook
from detforge.engine.trainer import Trainer

COLOURS = {"blue": (220, 0, 0), "green": (0, 200, 0), "red": (0, 0, 220)}  # BGR


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """train/ and val/ ImageFolder splits of flat noisy colours, 32 px (12 + 4 per class)."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for name, bgr in COLOURS.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                noise = rng.integers(-30, 30, (32, 32, 3))
                img = np.clip(np.array(bgr) + noise, 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{i}.png"), img)
    return root


def _args(colour_folder, project):
    return [
        "task=classify", f"data={colour_folder}", "model=cnn-s", "imgsz=32", "batch=4",
        "epochs=6", "workers=0", f"project={project}", "train.progress=false",
        "train.deterministic=true", "amp=off", "optimizer=adamw", "lr0=0.002",
        "eval.report=false",
    ]  # fmt: skip


@pytest.fixture
def cls_args(colour_folder, tmp_path):
    return _args(colour_folder, tmp_path / "runs")


@pytest.fixture(scope="module")
def trained(colour_folder, tmp_path_factory):
    """One 6-epoch run (with the confusion-matrix plot), shared by the tests that read it."""
    args = _args(colour_folder, tmp_path_factory.mktemp("trained"))
    return _fit(args, **{"eval.report": "true"})


def _fit(args, hooks=(), **kw):
    cfg = load_config(args + [f"{k}={v}" for k, v in kw.items()], env={})
    return Trainer(cfg, hooks=hooks).fit()


def _rows(run_dir):
    return list(csv.DictReader((run_dir / "results.csv").open()))


def test_classifier_learns_and_writes_the_run_folder(trained):
    res = trained
    rows = _rows(res.run_dir)
    assert len(rows) == 6
    for col in ("train/cls", "val/cls", "val/loss", "metrics/top1", "metrics/top5",
                "metrics/balanced_accuracy", "lr/default/weights", "fitness"):  # fmt: skip
        assert col in rows[0], col
    assert rows[0]["val/loss"] == rows[0]["val/cls"]  # one term: the total is that term
    assert float(rows[-1]["train/cls"]) < float(rows[0]["train/cls"])
    assert res.metrics["top1"] >= 0.9 and res.metrics["balanced_accuracy"] >= 0.9
    # default fitness of classification is top-1
    assert float(rows[res.best_epoch - 1]["fitness"]) == float(
        rows[res.best_epoch - 1]["metrics/top1"]
    )
    ck = load_checkpoint(res.run_dir / "weights" / "best.pt")
    assert ck["task"] == "classify"
    assert ck["model_spec"] == {"name": "cnn-s", "num_classes": 3, "dropout": 0.2}
    assert ck["names"] == ["blue", "green", "red"]
    cm = (res.run_dir / "confusion_matrix.csv").read_text().splitlines()
    assert cm[0] == "true \\ predicted,blue,green,red" and len(cm) == 4
    assert (res.run_dir / "confusion_matrix.png").stat().st_size > 0
    assert isinstance(json.loads((res.run_dir / "hardest.json").read_text()), list)
    report = (res.run_dir / "report.html").read_text()  # eval.report: written at the end
    for part in (">Training<", 'alt="Accuracy and fitness"', "<th>top1</th>", ">Per class<",
                 'alt="Confusion matrix (rows: true class)"', ">Hardest mistakes<"):  # fmt: skip
        assert part in report, part
    assert set(res.per_class) == {"blue", "green", "red"}


def test_resume_after_interruption_gives_the_same_weights(cls_args, monkeypatch):
    args = cls_args + ["epochs=3", "augment.mixup=0.5", "augment.cutmix=0.5"]
    full = _fit(args, name="full")
    calls = {"n": 0}
    real = torch.optim.AdamW.step

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 12:  # inside epoch 2 (9 steps per epoch)
            raise KeyboardInterrupt("simulated crash")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        _fit(args, name="part")
    monkeypatch.setattr(torch.optim.AdamW, "step", real)
    part = full.run_dir.parent / "part"
    t = load_checkpoint(part / "weights" / "last.pt")["train"]
    assert (t["epoch"], t["batch_in_epoch"], t["step"]) == (1, 2, 11)
    _fit(args, name="part", resume=part / "weights" / "last.pt")
    a = load_checkpoint(full.run_dir / "weights" / "last.pt")
    b = load_checkpoint(part / "weights" / "last.pt")
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-6), k
    cols = [c for c in _rows(full.run_dir)[0] if c.startswith(("train/", "metrics/", "val/"))]
    for ra, rb in zip(_rows(full.run_dir), _rows(part), strict=True):
        assert {c: ra[c] for c in cols} == {c: rb[c] for c in cols}


class RecordLr(Hook):
    def __init__(self):
        self.lrs, self.seen = [], []

    def after_epoch(self, tr):
        self.lrs.append(tr.optimizer.param_groups[0]["lr"])
        self.seen.append(tr.schedule.state_dict()["plateau"]["best"])


def test_plateau_schedule_reads_val_loss(cls_args):
    # any rise of val/loss counts as a plateau at patience 0: the lr is cut after such epochs
    rec = RecordLr()
    res = _fit(
        cls_args,
        [rec],
        **{"schedule.name": "plateau", "schedule.patience": 0, "schedule.factor": 0.5,
           "schedule.warmup_epochs": 0, "schedule.threshold": 0.0},
    )  # fmt: skip
    losses = [float(r["val/loss"]) for r in _rows(res.run_dir)]
    assert rec.seen == pytest.approx([min(losses[: i + 1]) for i in range(6)], rel=1e-5)
    bad = [i for i in range(1, 6) if losses[i] >= min(losses[:i])]
    assert bad, losses
    # a cut decided after epoch e applies from the first step of epoch e + 1
    assert rec.lrs[-1] == pytest.approx(0.002 * 0.5 ** len([i for i in bad if i < 5]))
    ck = load_checkpoint(res.run_dir / "weights" / "last.pt")
    assert ck["train"]["schedule"]["plateau"]["reduction"] == pytest.approx(0.5 ** len(bad))


@pytest.mark.parametrize(
    "task, setting, name",
    [
        ("classify", "augment.mosaic=0.5", "augment.mosaic"),
        ("classify", "augment.multi_scale=[0.5,1.5]", "augment.multi_scale"),
        ("classify", "loss.box=5", "loss.box"),
        ("classify", "eval.iou=0.5", "eval.iou"),
        ("classify", "backbone=resnet18", "model.backbone"),
        ("classify", "train.stages=[{epochs: 6, imgsz: 32, batch: 4}]", "train.stages"),
        ("detect", "augment.cutmix=0.5", "augment.cutmix"),
        ("detect", "augment.auto_augment=randaugment", "augment.auto_augment"),
        ("detect", "model.dropout=0.1", "model.dropout"),
        ("detect", "model.weights=imagenet", "model.weights"),
    ],
)
def test_settings_of_the_other_task_are_refused_by_name(task, setting, name):
    model = "model=cnn-s" if task == "classify" else "model=yolo-n"
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_config([f"task={task}", model, setting], env={})


def test_task_model_metric_and_data_mismatches(cls_args, colour_folder, tiny_data):
    with pytest.raises(ConfigError, match="set task=classify"):
        load_config(["model=cnn-s"], env={})
    with pytest.raises(ConfigError, match="not a classifier"):
        load_config(["task=classify", "model=yolo-n"], env={})
    with pytest.raises(ConfigError, match="top1.*task=classify metric"):
        load_config(["train.fitness={top1: 1.0}"], env={})
    with pytest.raises(ConfigError, match="cannot monitor 'val/box'"):
        load_config(["task=classify", "model=cnn-s", "early_stop.monitor=val/box"], env={})
    with pytest.raises(ConfigError, match="train.batch: 'auto' probes a detector"):
        load_config(["task=classify", "model=cnn-s", "batch=auto"], env={})
    cfg = load_config(["task=classify", "model=cnn-s", "schedule.monitor=val/cls"], env={})
    assert cfg.train.fitness == {"top1": 1.0}
    with pytest.raises(ConfigError, match="train it with task=classify"):
        _fit([f"data={colour_folder}", "workers=0", "imgsz=32", "train.progress=false"])
    with pytest.raises(ConfigError, match="task=detect"):
        _fit(cls_args, data=str(tiny_data))


def test_val_and_predict_on_a_classifier_checkpoint(trained, colour_folder, tmp_path):
    best = trained.run_dir / "weights" / "best.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = [sys.executable, "-m", "detforge.cli"]
    val = subprocess.run(
        [*run, "val", f"weights={best}", f"project={tmp_path / 'v'}", "workers=0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert val.returncode == 0, val.stderr
    assert "top1 1.0000" in val.stdout and "balanced_accuracy 1.0000" in val.stdout
    assert [line.split()[0] for line in val.stdout.splitlines()[2:5]] == list(COLOURS)
    out = tmp_path / "v" / "val"
    assert (out / "confusion_matrix.csv").is_file() and (out / "hardest.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["metrics"]["top1"] == 1.0
    report = (out / "report.html").read_text()  # the run's eval.report=true, no results.csv
    assert ">Per class<" in report and "<td>blue</td>" in report and ">Training<" not in report
    pred = subprocess.run(
        [*run, "predict", f"weights={best}", f"source={colour_folder / 'val' / 'green'}",
         "workers=0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert pred.returncode == 0, pred.stderr
    lines = [line for line in pred.stdout.splitlines() if line.endswith(" ms)")]
    assert len(lines) == 4
    for line in lines:
        top = line.split(": ", 1)[1].split()
        assert top[0] == "green" and float(top[1]) > 1 / 3
    from detforge.api import Detector
    from detforge.cli.predict import run as predict

    with pytest.raises(ConfigError, match="predict.conf: applies to detectors"):
        predict([f"weights={best}", f"source={colour_folder / 'val'}", "conf=0.5"])
    with pytest.raises(ConfigError, match="image classifier, not a detector"):
        Detector.load(best)


def test_classifier_names_match_the_models():
    from detforge.config.tasks import CLASSIFIER_NAMES
    from detforge.models.classifier import CLASSIFIERS

    assert set(CLASSIFIER_NAMES) == set(CLASSIFIERS)


def test_a_timm_classifier_trains_with_per_part_learning_rates_and_reloads(cls_args):
    pytest.importorskip("timm")
    from detforge.engine.checkpoint import model_from_checkpoint

    args = [a for a in cls_args if not a.startswith(("model=", "epochs="))]
    groups = "optim.groups=[{match: 'backbone.*', lr_mult: 0.1}]"
    res = _fit([*args, "model=timm:test_resnet", "epochs=1", groups])
    (row,) = _rows(res.run_dir)
    # timm's layers under backbone.*, our linear layer under head.* (in the default group)
    ratio = float(row["lr/backbone.*/weights"]) / float(row["lr/default/weights"])
    assert ratio == pytest.approx(0.1)
    ck = load_checkpoint(res.run_dir / "weights" / "best.pt")
    assert ck["model_spec"]["name"] == "timm:test_resnet"
    model = model_from_checkpoint(ck, "best.pt")
    assert model.normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]


def test_lr_find_sweeps_a_classifier_with_its_cross_entropy(cls_args, tmp_path):
    from detforge.engine.tools import lr_find_from_config

    cfg = load_config([*cls_args, "train.name=lr_find"], env={})
    result, out = lr_find_from_config(cfg, iters=12, start_lr=1e-6, end_lr=1.0)
    assert 2 < len(result.lrs) <= 12 and result.lrs[0] == pytest.approx(1e-6)
    # the first step is cross-entropy on 3 classes of an untrained head: close to ln 3
    assert result.losses[0] == pytest.approx(np.log(3), abs=0.5)
    rows = list(csv.reader((out / "lr_find.csv").open()))
    assert rows[0] == ["lr", "loss", "smoothed"] and len(rows) == len(result.lrs) + 1
    assert (out / "lr_find.png").stat().st_size > 0


def test_kfold_refuses_a_classification_run_naming_the_setting(colour_folder, tmp_path):
    from detforge.crossval.kfold import run_kfold

    settings = ["task=classify", f"data={colour_folder}", "model=cnn-s",
                f"project={tmp_path}"]  # fmt: skip
    with pytest.raises(ConfigError, match="train.task: kfold splits the images of a detection"):
        run_kfold(settings, 2)
    assert not any(tmp_path.iterdir())  # refused before any folder is made
