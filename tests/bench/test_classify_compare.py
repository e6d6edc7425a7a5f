"""bench/classify_compare.py: model specs and the figures read back from a run folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def cc():
    spec = importlib.util.spec_from_file_location("classify_compare", BENCH / "classify_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_specs_give_labels_and_settings(cc):
    assert cc.parse_model("cnn-s") == ("cnn-s", "cnn-s", [])
    assert cc.parse_model("efficientnet_b0:weights=imagenet") == (
        "efficientnet_b0-imagenet", "efficientnet_b0", ["weights=imagenet"]
    )  # fmt: skip
    assert cc.parse_model("timm:resnet18") == ("timm_resnet18", "timm:resnet18", [])
    assert cc.parse_model("timm:resnet18:lr0=0.1")[1:] == ("timm:resnet18", ["lr0=0.1"])
    with pytest.raises(SystemExit, match="key=value"):
        cc.parse_model("cnn-s:lr0=0.1,amp")


def test_summary_uses_the_last_epoch_and_the_median_epoch_time(cc, tmp_path):
    cols = "epoch,metrics/top1,metrics/top5,metrics/balanced_accuracy,metrics/macro_f1,epoch_time"
    rows = ["1,0.5,0.9,0.4,0.3,100", "2,0.8,1,0.6,0.5,10", "3,0.7,1,0.65,0.55,12"]
    (tmp_path / "results.csv").write_text("\n".join([cols, *rows]) + "\n")
    s = cc.summarise(tmp_path, images=120)
    assert (s["last_top1"], s["last_balanced_accuracy"], s["last_macro_f1"]) == (0.7, 0.65, 0.55)
    assert (s["best_top1"], s["best_epoch"], s["epochs"]) == (0.8, 2, 3)
    assert s["train_images_per_s"] == 10.0  # 120 images / median 12 s, not pulled by the 100 s
    assert s["train_images_per_s_mean"] == round(360 / 122, 2)
