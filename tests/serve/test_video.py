"""``detforge predict source=video``: the annotated video has the source's frame count, size
and rate (read back), one JSON line per frame holds the same detections as ``Detector.predict``
on that frame, ``vid_stride`` keeps every N-th frame, Ctrl-C leaves readable files, and a
source that cannot be opened is an error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import detforge
from detforge.cli import main
from detforge.serve.video import is_video_source, open_video, predict_video


def read_frames(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of a video (BGR) and its frame rate."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def test_video_gives_an_annotated_video_and_one_json_line_per_frame(
    tiny_weights, video_12, tmp_path, capsys
):
    project = tmp_path / "runs"
    # the default precision of both (auto: bf16 on CPUs with AVX-512-BF16, else fp32)
    code = main(["predict", f"weights={tiny_weights}", f"source={video_12}", "conf=0.05",
                 f"project={project}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    run = project / "predict"
    frames, fps = read_frames(run / "shapes.mp4")
    assert len(frames) == 12 and frames[0].shape == (128, 128, 3) and fps == pytest.approx(10)
    lines = (run / "shapes.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(12))
    assert [r["time_s"] for r in records] == pytest.approx([i / 10 for i in range(12)])
    # the same detections as the Python API on the decoded source frames
    source = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in read_frames(video_12)[0]]
    preds = detforge.Detector.load(tiny_weights).predict(source, conf=0.05)
    assert sum(len(p) for p in preds) > 0  # the check compares real detections
    for r, p in zip(records, preds, strict=True):
        assert r["classes"] == p.classes.tolist()
        assert r["names"] == [p.names[c] for c in p.classes]
        np.testing.assert_allclose(r["scores"], p.scores, rtol=1e-5)
        np.testing.assert_allclose(np.array(r["boxes"]).reshape(-1, 4), p.boxes, atol=0.01)
    # one label file per frame with one line per detection
    for r in records:
        label = run / "labels" / f"shapes_{r['frame']}.txt"
        assert len(label.read_text().splitlines()) == len(r["scores"])
    assert "12 frames from video file" in out and "infer" in out and "overall" in out
    # the drawn boxes differ from the source frames (annotated), the size is the source's
    annotated_diff = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in
                      zip(frames, read_frames(video_12)[0], strict=True)]  # fmt: skip
    assert max(annotated_diff) > 1


def test_vid_stride_keeps_every_nth_frame(tiny_weights, video_12, tmp_path):
    project = tmp_path / "runs"
    code = main(["predict", f"weights={tiny_weights}", f"source={video_12}", "vid_stride=5",
                 "predict.save_txt=false", f"project={project}"])  # fmt: skip
    assert code == 0
    run = project / "predict"
    frames, fps = read_frames(run / "shapes.mp4")
    assert len(frames) == 3 and fps == pytest.approx(2)  # frames 0, 5, 10 at 10/5 fps
    records = [json.loads(line) for line in (run / "shapes.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 5, 10]
    assert not (run / "labels").exists()


def test_vid_stride_on_images_is_refused(tiny_weights, tmp_path, capsys):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    code = main(["predict", f"weights={tiny_weights}", f"source={img}", "vid_stride=2",
                 f"project={tmp_path / 'runs'}"])  # fmt: skip
    assert code == 2
    assert "vid_stride=2: applies to videos" in capsys.readouterr().err


def test_interrupted_run_leaves_readable_files(tiny_weights, video_12, tmp_path):
    det = detforge.Detector.load(tiny_weights)
    calls = []

    def predict(frames):
        calls.append(len(frames))
        if len(calls) == 5:
            raise KeyboardInterrupt
        return det.predict(frames, conf=0.05)

    cap, info = open_video(str(video_12))
    summary = predict_video(cap, info, predict, tmp_path, batch=1)
    assert summary.interrupted and summary.frames == 4
    assert len(read_frames(tmp_path / "shapes.mp4")[0]) == 4
    lines = (tmp_path / "shapes.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2, 3]
    assert "interrupted" in summary.line()


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("7", "cannot open camera 7"),
        ("rtsp://127.0.0.1:9/none", "cannot open stream rtsp://127.0.0.1:9/none"),
        ("missing.mp4", "video file 'missing.mp4' does not exist"),
    ],
)
def test_a_source_that_cannot_be_opened_is_named(tiny_weights, tmp_path, capsys, source, named):
    project = tmp_path / "runs"
    code = main(["predict", f"weights={tiny_weights}", f"source={source}",
                 f"project={project}"])  # fmt: skip
    assert code == 2
    assert named in capsys.readouterr().err
    assert not project.exists()  # failed before writing anything


def test_video_sources_are_recognised(tmp_path):
    assert is_video_source("0") and is_video_source("rtsp://cam/1") and is_video_source("a.MP4")
    assert not is_video_source("a.jpg") and not is_video_source("images/")
    (tmp_path / "clip.mp4").mkdir()  # a folder named like a video is a folder of images
    assert not is_video_source(str(tmp_path / "clip.mp4"))


def test_onnx_weights_run_the_same_video_loop(tiny_weights, video_12, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(read_frames(video_12)[0][:2]):
        cv2.imwrite(str(frames / f"{i}.png"), f)
    onnx = tmp_path / "tiny.onnx"
    assert main(["export", f"weights={tiny_weights}", f"out={onnx}", f"source={frames}"]) == 0
    runs = {}
    for w in (tiny_weights, onnx):
        project = tmp_path / f"runs-{w.suffix[1:]}"
        code = main(["predict", f"weights={w}", f"source={video_12}", "conf=0.05",
                     "precision=fp32", "predict.save_txt=false", f"project={project}"])  # fmt: skip
        assert code == 0
        assert len(read_frames(project / "predict" / "shapes.mp4")[0]) == 12
        lines = (project / "predict" / "shapes.jsonl").read_text().splitlines()
        runs[w.suffix] = [json.loads(line) for line in lines]
    assert sum(len(r["scores"]) for r in runs[".pt"]) > 0
    for pt, ox in zip(runs[".pt"], runs[".onnx"], strict=True):
        assert pt["frame"] == ox["frame"] and pt["classes"] == ox["classes"]
        np.testing.assert_allclose(ox["scores"], pt["scores"], atol=5e-4)
        np.testing.assert_allclose(ox["boxes"], pt["boxes"], atol=0.06)


def test_a_read_failure_is_an_error_naming_the_source(tmp_path):
    from detforge.serve.video import VideoInfo

    class BrokenCapture:  # two frames, then the decoder fails
        def __init__(self):
            self.n, self.released = 0, False

        def read(self):
            self.n += 1
            if self.n > 2:
                raise cv2.error("decoder failed")
            return True, np.zeros((32, 48, 3), np.uint8)

        def release(self):
            self.released = True

    cap = BrokenCapture()
    info = VideoInfo("video file broken.mp4", "broken", live=False, fps=5.0)
    seen = []

    def predict(frames):
        seen.extend(frames)
        return [detforge.Prediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), ["a"],
                                    (32, 48)) for _ in frames]  # fmt: skip

    with pytest.raises(OSError, match="reading video file broken.mp4 failed: .*decoder failed"):
        predict_video(cap, info, predict, tmp_path)
    assert len(seen) == 2 and cap.released
    assert len(read_frames(tmp_path / "broken.mp4")[0]) == 2  # what was read is kept, playable
    assert len((tmp_path / "broken.jsonl").read_text().splitlines()) == 2
