"""The Python API trains with the CLI's names, logs like the CLI, and the demo run's first and
last lines say what it does and how to go on (issue 10.1, 10.7, 10 "must show")."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import detforge
from detforge.config import ConfigError
from detforge.config.loader import parse_value
from detforge.data.demo import demo_dataset_dir, generate_demo_dataset

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.setdefault("PYTHONPATH", str(SRC))  # the detforge under test
    return env


def test_api_run_logs_to_console_and_train_log_like_the_cli(tiny_data, tmp_path):
    """In a fresh interpreter, as a user runs it: the README's call with aliases; console and
    train.log get the data summary and the final metrics; OpenMP threads do not spin."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import detforge
        r = detforge.train(
            data={str(tiny_data)!r}, model="yolo-n", epochs=2, imgsz=64, batch=4, workers=0,
            project={str(tmp_path / "runs")!r}, amp="off",
            **{{"data.cache_dir": {str(tmp_path / "cache")!r}, "train.progress": False,
               "eval.report": False}},
        )
        print("RUN", r.run_dir)
        print("OMP", os.environ.get("OMP_WAIT_POLICY"))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert err.splitlines()[0].startswith("detforge train: yolo-n on ")
    assert "train: 16 images" in err and "val: 8 images" in err  # the data summary
    assert "epoch 2/2" in err and "mAP50-95" in err
    assert "done: " in err and "detforge val weights=" in err  # final metrics, how to go on
    assert "OMP PASSIVE" in proc.stdout
    run_dir = Path(proc.stdout.split("RUN ", 1)[1].splitlines()[0])
    log = (run_dir / "train.log").read_text()
    assert "train: 16 images" in log and "epoch 2/2" in log and "best epoch" in log


def test_api_verbose_false_keeps_the_console_quiet_but_writes_train_log(tiny_args, capsys, caplog):
    overrides = {k: parse_value(v) for k, v in (a.split("=", 1) for a in tiny_args)}
    overrides["epochs"] = 1
    result = detforge.train(verbose=False, **overrides)
    out = capsys.readouterr()
    assert "epoch 1/1" not in out.err + out.out
    assert "epoch 1/1" not in caplog.text  # verbose=False does not propagate INFO either
    log = (result.run_dir / "train.log").read_text()
    assert "train: 16 images" in log and "epoch 1/1" in log


def test_api_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        detforge.train(epoch=3)


def test_model_and_group_errors_come_before_any_data_is_read(tmp_path):
    missing = tmp_path / "no" / "data.yaml"  # a data error if anything tried to read it
    with pytest.raises(ConfigError, match=r"model.name: 'yolo-x': unknown scale 'x'"):
        detforge.train(data=str(missing), model="yolo-x")
    with pytest.raises(ConfigError, match=r"optim.groups\[0\].match: 'backbon.\*' matches no"):
        detforge.train(data=str(missing), **{"optim.groups": [{"match": "backbon.*"}]})


def test_class_weight_count_is_checked_before_the_label_scan(tiny_data, tmp_path, monkeypatch):
    import detforge.engine.setup_data as setup_data

    def no_scan(*a, **k):
        raise AssertionError("the dataset was scanned before the config check")

    monkeypatch.setattr(setup_data, "build_data", no_scan)
    with pytest.raises(ConfigError, match="loss.cls_weights: 2 weights for 6 classes"):
        detforge.train(data=str(tiny_data), project=str(tmp_path), **{"loss.cls_weights": [1, 2]})


def test_demo_run_says_what_it_does_first_and_how_to_go_on_last(tmp_path):
    """``detforge train`` with no data: first line what it trains, last lines the next steps.
    A tiny dataset stands in for the demo's 500 images (same cache folder the demo uses)."""
    cache = tmp_path / "cache"
    generate_demo_dataset(demo_dataset_dir(cache), num_train=16, num_val=8, imgsz=64, seed=1)
    proc = subprocess.run(
        [sys.executable, "-m", "detforge.cli", "train", "epochs=1", "imgsz=64", "batch=8",
         "workers=0", f"data.cache_dir={cache}", f"project={tmp_path / 'runs'}",
         "train.progress=false", "amp=off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == (
        "detforge train: yolo-n on the built-in demo dataset (synthetic shapes, 6 classes; use "
        f"data=your/data.yaml for your own), 1 epoch at 64 px, run folder under {tmp_path}/runs/"
    )
    run = tmp_path / "runs" / "train"
    best = run / "weights" / "best.pt"
    assert lines[-6].startswith(f"done: {run}  best epoch 1  mAP50 ")
    assert lines[-5:] == [
        "next:",
        f"  validate:  detforge val weights={best}",
        f"  predict:   detforge predict weights={best} source=path/to/images",
        "  your data: detforge train data=path/to/data.yaml   (README: Your own data)",
        f"  report:    {run / 'report.html'}",
    ]
