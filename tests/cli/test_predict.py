"""``detforge predict`` and ``Detector.predict``: one output per image even when stems clash,
unreadable images skipped and counted, gray and RGBA arrays detected like their RGB equivalent."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import detforge
from detforge.cli import main


@pytest.fixture(scope="module")
def weights(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict_runs")
    settings = {
        "data.path": str(tiny_data), "train.imgsz": 64, "train.batch": 4, "train.epochs": 1,
        "data.workers": 0, "train.project": str(out), "data.cache_dir": str(out / "cache"),
        "train.progress": False, "train.amp": "off", "eval.report": False,
    }  # fmt: skip
    res = detforge.train(**settings)
    return res.run_dir / "weights" / "best.pt"


def test_clashing_stems_get_their_own_outputs_and_bad_images_are_skipped(
    weights: Path, tiny_data: Path, tmp_path: Path, capsys, caplog
) -> None:
    caplog.set_level("WARNING", logger="detforge")
    val = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    src = tmp_path / "src"
    for rel, image in [("a.jpg", val[0]), ("x/b.jpg", val[1]), ("y/b.jpg", val[2]),
                       ("c.jpg", val[3])]:  # fmt: skip
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, src / rel)
    cv2.imwrite(str(src / "a.png"), cv2.imread(str(val[4])))  # same stem as a.jpg
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    project = tmp_path / "runs"
    code = main(["predict", f"weights={weights}", f"source={src}", "conf=0.01",
                 f"project={project}"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "5 images, 1 skipped (unreadable)" in out.out
    assert f"{src / 'broken.jpg'}" in caplog.text and "unreadable" in caplog.text
    run = project / "predict"
    names = {"a.jpg", "a.png", "x__b.jpg", "y__b.jpg", "c"}
    assert {p.stem for p in run.glob("*.jpg")} == names
    assert {p.stem for p in (run / "labels").glob("*.txt")} == names
    preds = json.loads((run / "predictions.json").read_text())
    by_name = Counter(p["output_name"] for p in preds)
    assert set(by_name) <= names
    source_of = {p["output_name"]: Path(p["file_name"]) for p in preds}
    for name, n in by_name.items():
        rows = (run / "labels" / f"{name}.txt").read_text().splitlines()
        assert len(rows) == n  # each label file holds exactly the json's detections of it
        expected = {"a.jpg": "a.jpg", "a.png": "a.png", "x__b.jpg": "x/b.jpg",
                    "y__b.jpg": "y/b.jpg", "c": "c.jpg"}[name]  # fmt: skip
        assert source_of[name] == src / expected


def test_gray_and_rgba_arrays_detect_like_rgb(weights: Path) -> None:
    det = detforge.Detector.load(weights, device="cpu")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    gray[20:50, 30:60] = 255
    rgb_of_gray = np.repeat(gray[:, :, None], 3, axis=2)
    rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (70, 90, 1), dtype=np.uint8)], axis=2)
    cases = [(gray, rgb_of_gray), (gray[:, :, None], rgb_of_gray), (rgba, rgb)]
    for img, equivalent in cases:
        got, want = det.predict([img, equivalent], conf=0.0, max_det=10)
        assert got.shape == want.shape == (70, 90) and len(want) == 10
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_array_equal(got.classes, want.classes)
    with pytest.raises(ValueError, match=r"got shape \(70, 90, 2\)"):
        det.predict(np.zeros((70, 90, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype float32"):
        det.predict(np.zeros((70, 90, 3), np.float32))


def test_predict_runs_images_in_batches_with_the_results_of_one_at_a_time(
    weights: Path, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    val = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(11):  # two batches of 8 and 3, one unreadable image inside the first
        shutil.copy(val[i % len(val)], src / f"{i:02d}.jpg")
    (src / "04.jpg").write_bytes(b"not an image")
    sizes: list[int] = []
    real = detforge.Detector.predict

    def spy(self, images, *a, **k):
        images = list(images)
        sizes.append(len(images))
        return real(self, images, *a, **k)

    monkeypatch.setattr(detforge.Detector, "predict", spy)
    assert (
        main(
            [
                "predict",
                f"weights={weights}",
                f"source={src}",
                "conf=0.01",
                f"project={tmp_path / 'runs'}",
                "precision=fp32",
            ]
        )
        == 0
    )  # fp32 on both sides: batches of 8 here, single images below, compared to 1e-3 px
    assert sizes == [7, 3]
    preds = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    det = detforge.Detector.load(weights, amp="off")
    for i in (0, 5, 10):
        alone = real(det, [src / f"{i:02d}.jpg"], conf=0.01)[0]
        rows = [p for p in preds if p["image_id"] == i]
        assert len(rows) == len(alone) > 0
        got = np.array([p["bbox"] for p in rows])
        want = np.concatenate([alone.boxes[:, :2], alone.boxes[:, 2:] - alone.boxes[:, :2]], 1)
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize(("setting", "canvas"), [("rect=true", (32, 64)), ("rect=false", (64, 64))])
def test_predict_rect_setting_picks_the_canvas(
    weights: Path, tmp_path: Path, monkeypatch, setting: str, canvas: tuple[int, int]
) -> None:
    """``predict.rect`` (alias ``rect=``) reaches the detector: a 24x64 image at imgsz 64 runs
    on a 32x64 rectangle, or on the 64x64 square with rect=false."""
    seen: list[tuple] = []
    real = detforge.Detector.predict

    def spy(self, images, *a, **k):
        forward = self.model.forward
        self.model.forward = lambda x: seen.append(tuple(x.shape[-2:])) or forward(x)
        try:
            return real(self, images, *a, **k)
        finally:
            del self.model.forward

    monkeypatch.setattr(detforge.Detector, "predict", spy)
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "wide.png"), np.full((24, 64, 3), 90, np.uint8))
    args = ["predict", f"weights={weights}", f"source={src}", "imgsz=64", f"project={tmp_path}"]
    assert main([*args, setting]) == 0
    assert seen == [canvas]
