"""The command line: errors are one clear line (exit 2), commands produce their outputs."""

import json
from pathlib import Path

import pytest

from detforge.cli import main


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_misspelt_key_is_one_line_error(capsys):
    code, _, err = _run(capsys, "train", "optim.lr=0.1")
    assert code == 2
    assert "unknown key 'optim.lr' (did you mean 'optim.lr0'?)" in err
    assert "Traceback" not in err


def test_missing_data_yaml(capsys, tmp_path):
    code, _, err = _run(capsys, "train", f"data={tmp_path / 'nope.yaml'}", f"project={tmp_path}")
    assert code == 2 and "nope.yaml" in err and "Traceback" not in err


def test_unknown_command_and_missing_arguments(capsys):
    code, _, err = _run(capsys, "trian")
    assert code == 2 and "did you mean 'train'" in err
    code, _, err = _run(capsys, "val")
    assert code == 2 and "missing weights=" in err
    code, _, err = _run(capsys, "predict", "weights=x.pt")
    assert code == 2 and "missing source=" in err
    code, _, err = _run(capsys, "val", "weights=/nonexistent/best.pt")
    assert code == 2 and "/nonexistent/best.pt does not exist" in err


def test_train_val_predict_round_trip(capsys, tiny_args, tiny_data, tmp_path):
    code, out, err = _run(capsys, "train", *tiny_args, "epochs=1")
    assert code == 0, err
    assert "done:" in out and "mAP50" in out
    weights = tmp_path / "runs" / "train" / "weights" / "best.pt"
    assert weights.is_file()

    code, out, err = _run(capsys, "val", f"weights={weights}", "workers=0", "train.progress=false")
    assert code == 0, err
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in out and "circle" in out
    val_dir = tmp_path / "runs" / "val"
    metrics = json.loads((val_dir / "metrics.json").read_text())
    assert set(metrics["stats"]) >= {"map50_95", "map50", "ar100"}

    images = tiny_data.parent / "images" / "val"
    code, out, err = _run(capsys, "predict", f"weights={weights}", f"source={images}", "conf=0.01")
    assert code == 0, err
    pred_dir = tmp_path / "runs" / "predict"
    n = len(list(images.glob("*.jpg")))
    assert len(list(pred_dir.glob("*.jpg"))) == n
    assert len(list((pred_dir / "labels").glob("*.txt"))) == n
    preds = json.loads((pred_dir / "predictions.json").read_text())
    assert all(set(p) >= {"image_id", "category_id", "bbox", "score"} for p in preds)
    assert "ms/image" in out


def test_eval_json_prints_the_12_stats(capsys, shared):
    folder = shared / "bench" / "evalbench"
    code, out, err = _run(
        capsys, "eval-json", f"gt={folder / 'gt.json'}", f"pred={folder / 'dt.json'}", "--json"
    )
    assert code == 0, err
    stats = json.loads(out)
    assert list(stats) == [
        "map50_95",
        "map50",
        "map75",
        "map_small",
        "map_medium",
        "map_large",
        "ar1",
        "ar10",
        "ar100",
        "ar_small",
        "ar_medium",
        "ar_large",
    ]
    ref = json.loads((folder / "bench_result.json").read_text())["pycocotools"]["stats"]
    assert list(stats.values()) == pytest.approx(ref, abs=1e-4)
    code, out, _ = _run(
        capsys, "eval-json", f"gt={folder / 'gt.json'}", f"pred={folder / 'dt.json'}"
    )
    assert "Average Precision" in out


def test_schedule_and_lr_find_commands(capsys, tiny_args, tmp_path):
    png = tmp_path / "sched.png"
    code, out, err = _run(capsys, "schedule", *tiny_args, "recipe=finetune", f"out={png}")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    code, out, err = _run(capsys, "lr-find", *tiny_args, "iters=8")
    assert code == 0, err
    assert "suggested optim.lr0" in out
    run = tmp_path / "runs" / "lr_find"
    assert (run / "lr_find.png").is_file()
    rows = (run / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "lr,loss,smoothed" and 2 <= len(rows) <= 9
    code, _, err = _run(capsys, "lr-find", *tiny_args, "iters=-3")
    assert code == 2 and "iters must be a positive number" in err


def test_report_val_augment_ensemble_and_diagnose(capsys, caplog, tiny_args, tiny_data, tmp_path):
    caplog.set_level("INFO", logger="detforge")
    code, out, err = _run(capsys, "train", *tiny_args, "epochs=1", "eval.report=true")
    assert code == 0, err
    run = tmp_path / "runs" / "train"
    assert (run / "report.html").is_file()
    assert (run / "eval" / "confusion_matrix.png").is_file()
    assert (run / "diagnosis").is_dir()
    rows = (run / "results.csv").read_text().splitlines()
    assert all(k in rows[0] for k in ("metrics/precision", "metrics/f1", "metrics/mean_iou"))

    w = run / "weights" / "best.pt"
    code, out, err = _run(
        capsys,
        "val",
        f"weights={w}",
        "workers=0",
        "augment=true",
        "tta.transforms=[flip]",
        "train.progress=false",
    )
    assert code == 0, err
    assert "test-time augmentation / ensemble: {'transforms': ['flip']" in caplog.text
    metrics = json.loads((tmp_path / "runs" / "val" / "metrics.json").read_text())
    assert metrics["augment"] is True
    assert (tmp_path / "runs" / "val" / "eval" / "pr_curve.png").is_file()

    code, out, err = _run(capsys, "val", f"weights={w},{w}", "workers=0", "train.progress=false")
    assert code == 0, err
    assert (
        len(json.loads((tmp_path / "runs" / "val2" / "metrics.json").read_text())["weights"]) == 2
    )
    assert "test-time augmentation / ensemble: {'merge'" in caplog.text  # merged, no views

    code, out, err = _run(capsys, "diagnose", f"weights={w}", "workers=0", "train.progress=false")
    assert code == 0, err
    assert "dAP50" in out
    code, out, err = _run(
        capsys,
        "diagnose",
        f"gt={run / 'val_gt.json'}",
        f"pred={run / 'val_predictions.json'}",
        f"out={tmp_path / 'dg'}",
    )
    assert code == 0, err
    code, _, err = _run(capsys, "val", f"weights={w}", "tta.transforms=[flop]")
    assert code == 2 and "did you mean 'flip'" in err

    images = tiny_data.parent / "images" / "val"
    code, out, err = _run(
        capsys, "predict", f"weights={w},{w}", f"source={images}", "augment=true", "conf=0.01"
    )
    assert code == 0, err


def _coco_pair(folder: Path) -> tuple[Path, Path]:
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30],
                         "area": 900, "iscrowd": 0}],
    }  # fmt: skip
    pred = [{"image_id": 1, "category_id": 1, "bbox": [12, 10, 30, 30], "score": 0.9}]
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "pred.json").write_text(json.dumps(pred))
    return folder / "gt.json", folder / "pred.json"


def test_diagnose_from_files_numbers_its_run_folders(capsys, tmp_path, monkeypatch):
    gt, pred = _coco_pair(tmp_path)
    monkeypatch.chdir(tmp_path)
    for folder in ("diagnose", "diagnose2", "diagnose3"):
        code, out, err = _run(capsys, "diagnose", f"gt={gt}", f"pred={pred}")
        assert code == 0, err
        assert out.rstrip().endswith(f"diagnosis written to {Path('runs') / folder}")
        assert (tmp_path / "runs" / folder / "diagnosis.json").is_file()
    code, out, err = _run(capsys, "diagnose", f"gt={gt}", f"pred={pred}", "out=mine")
    assert code == 0, err
    assert (tmp_path / "mine" / "diagnosis.json").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "diagnose", "diagnose2", "diagnose3"
    ]  # fmt: skip


def test_recipes_and_models_are_listed(capsys):
    code, out, _ = _run(capsys, "recipes")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"default", "finetune", "small-objects", "plateau"} <= set(names)
    assert "AdamW" in out
    code, out, _ = _run(capsys, "models")
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert code == 0 and {"yolo-n-p2", "yolov5-m-p2", "resnet50", "timm:<name>"} <= set(names)
