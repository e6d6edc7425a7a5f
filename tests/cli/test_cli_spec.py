"""One argument spec for every command: its own -h, typed key=value arguments, --json."""

import json
import subprocess
import sys

import pytest

from detforge.cli import main
from detforge.cli.main import _commands
from detforge.cli.spec import REQUIRED, Arg, Command, parse
from detforge.config.fields import ConfigError

COMMANDS = sorted(_commands())


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_prints_its_own_help(capsys, name):
    spec, _ = _commands()[name]
    assert main([name, "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: detforge {name}")
    assert "commands:" not in out  # not the general usage
    for arg in spec.args:
        assert f"  {arg.name}=" in out and arg.help in out
    assert ("--json" in out) == spec.json


def test_the_commands_of_today_are_all_there():
    assert set(COMMANDS) == {
        "train", "val", "predict", "eval-json", "diagnose", "models", "config", "recipes",
        "schedule", "lr-find", "augment-preview", "data-stats", "convert", "split", "kfold", "tune",
        "spaces", "export", "benchmark", "serve", "cam",
    }  # fmt: skip
    assert {n for n in COMMANDS if _commands()[n][0].json} == {
        "train",
        "val",
        "eval-json",
        "diagnose",
        "benchmark",
    }


def test_parse_types_defaults_and_settings():
    cmd = Command(
        "demo", "a demo", "detforge demo",
        (Arg("n", int, 3, "count"), Arg("lr", float, 0.1, "rate"), Arg("names", list, None, "x"),
         Arg("src", str, REQUIRED, "input", example="src=dir")),
    )  # fmt: skip
    p = parse(cmd, ["src=a", "lr=1", "names=a, b", "epochs=2"])
    assert p.special == {"n": 3, "lr": 1.0, "names": ["a", "b"], "src": "a"}
    assert isinstance(p.special["lr"], float) and p.settings == ["epochs=2"]
    with pytest.raises(ConfigError, match=r"detforge demo: n: expected int, got '1.5'"):
        parse(cmd, ["src=a", "n=1.5"])
    with pytest.raises(ConfigError, match=r"missing src= \(e.g. src=dir\)"):
        parse(cmd, ["n=2"])
    with pytest.raises(ConfigError, match="--json is not an option"):
        parse(cmd, ["src=a", "--json"])
    only = Command("only", "x", "detforge only", (Arg("out", str, "o", "y"),), settings=False)
    with pytest.raises(ConfigError, match=r"unknown argument 'ot' \(did you mean 'out'\?\)"):
        parse(only, ["ot=1"])


def test_command_without_settings_rejects_stray_arguments(capsys):
    assert main(["models", "epochs=3"]) == 2
    assert "unknown argument 'epochs'" in capsys.readouterr().err
    assert main(["models", "--json"]) == 2
    assert "--json is not an option" in capsys.readouterr().err


def test_diagnose_from_files_json_output(capsys, tmp_path):
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 100, "width": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
             "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }  # fmt: skip
    pred = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    files = [f"gt={tmp_path / 'gt.json'}", f"pred={tmp_path / 'pred.json'}"]
    code = main(["diagnose", *files, f"out={tmp_path / 'd'}", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["map50"] == pytest.approx(1.0) and summary["true_positives"] == 1
    assert summary == json.loads((tmp_path / "d" / "diagnosis.json").read_text())
    code = main(["eval-json", *files, "--json"])
    assert code == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["map50"] == pytest.approx(1.0) and stats["map50_95"] == pytest.approx(1.0)


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "detforge.cli", "split", "-h"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: detforge split")


def test_train_and_val_json_output(capsys, tiny_args, tmp_path):
    code = main(["train", *tiny_args, "epochs=1", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    trained = json.loads(out)
    assert trained["best_epoch"] == 1 and {"map50", "map50_95"} <= set(trained["metrics"])
    weights = tmp_path / "runs" / "train" / "weights" / "best.pt"
    code = main(["val", f"weights={weights}", "workers=0", "train.progress=false", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)  # stdout is the json alone
    assert summary == json.loads((tmp_path / "runs" / "val" / "metrics.json").read_text())
    assert summary["stats"]["map50"] == pytest.approx(trained["metrics"]["map50"])
