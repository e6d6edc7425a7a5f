"""Detection on video: a file, an RTSP/RTMP/HTTP stream or a camera index, through OpenCV.

A reader thread decodes frames ahead into a bounded queue (decoding overlaps inference and
memory stays bounded however long the video); the main thread takes the frames that are ready
(up to ``batch`` at once), runs the predictor on them, and writes the annotated video, one JSON
line per frame and, if asked, one YOLO txt file per frame. Ctrl-C stops the loop: the writer is
released and the JSON lines flushed, so what was written so far stays readable.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config.fields import ConfigError
from ..engine.rundir import write_text_atomic
from ..infer.postprocess import yolo_txt_lines
from ..report.draw import draw_detections
from .results import PredictionLike, prediction_record

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "VideoSummary",
    "is_video_source",
    "open_video",
    "FrameReader",
    "predict_video",
]

log = logging.getLogger("detforge")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
OPEN_TIMEOUT_MS = 10000  # a stream that does not answer fails in 10 s, not OpenCV's 30
FALLBACK_FPS = 30.0  # for sources that report no frame rate (some cameras and streams)
_END = object()  # the reader's last item: no more frames

Predictor = Callable[[list[np.ndarray]], Sequence[PredictionLike]]


def is_video_source(source: str) -> bool:
    """A camera index (``0``), a stream URL or a file with a video suffix."""
    s = source.strip()
    if s.isdigit() or s.lower().startswith(STREAM_SCHEMES):
        return True
    return Path(s).suffix.lower() in VIDEO_SUFFIXES and not Path(s).is_dir()


@dataclass
class VideoInfo:
    name: str  # what the error messages and the summary call the source
    stem: str  # of the output files
    live: bool  # camera or stream: timestamps from the clock, no known length
    fps: float  # the source's frame rate (FALLBACK_FPS when it reports none)


def open_video(source: str) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a camera index, stream URL or video file; a source that cannot be opened is a
    :class:`ConfigError` naming it."""
    s = source.strip()
    if s.isdigit():
        target, name, stem, live = int(s), f"camera {s}", f"camera{s}", True
        cap = cv2.VideoCapture(target)
    elif s.lower().startswith(STREAM_SCHEMES):
        name, live = f"stream {s}", True
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", s.split("://", 1)[1]).strip("_.")[:60] or "stream"
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(s, cv2.CAP_ANY, params)
    else:
        if not Path(s).is_file():
            raise ConfigError(f"source: video file '{s}' does not exist")
        name, stem, live = f"video file {s}", Path(s).stem, False
        cap = cv2.VideoCapture(s)
    if not cap.isOpened():
        cap.release()
        raise ConfigError(f"source: cannot open {name} (OpenCV could not open or decode it)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        log.warning("%s reports no frame rate; the output video is written at %g fps", name,
                    FALLBACK_FPS)  # fmt: skip
        fps = FALLBACK_FPS
    return cap, VideoInfo(name, stem, live, fps)


class FrameReader:
    """Decodes every ``stride``-th frame on a thread into a queue of at most ``ahead`` frames.

    Items are (frame index, time in seconds, BGR uint8 (H, W, 3)); the time is index / fps for
    files and the clock since the first frame for live sources. The thread owns ``cap`` and
    releases it when it ends.
    """

    def __init__(self, cap: cv2.VideoCapture, info: VideoInfo, stride: int = 1, ahead: int = 16):
        self.cap, self.info, self.stride = cap, info, stride
        self.queue: queue.Queue = queue.Queue(maxsize=ahead)
        self.read_seconds = 0.0  # decoding time, for the read frames per second
        self.frames_read = 0  # frames decoded and queued (skipped ones only grabbed)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detforge-video-reader", daemon=True)

    def start(self) -> FrameReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end and wait for it (it checks between frames)."""
        self._stop.set()
        self._thread.join(timeout=OPEN_TIMEOUT_MS / 1000)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        index, start = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                keep = index % self.stride == 0
                ok, frame = self.cap.read() if keep else (self.cap.grab(), None)
                self.read_seconds += time.perf_counter() - t0
                if not ok:
                    break
                if keep:
                    t = time.monotonic() - start if self.info.live else index / self.info.fps
                    if not self._put((index, t, frame)):
                        break
                    self.frames_read += 1
                index += 1
        except BaseException as e:  # reported by the consumer, not lost on the thread
            self.error = e
        finally:
            self.cap.release()
            self._put(_END)

    def batches(self, size: int) -> Iterator[list[tuple[int, float, np.ndarray]]]:
        """Lists of up to ``size`` frames: waits for one, then takes those already decoded."""
        while True:
            item = self.queue.get()
            batch = []
            while item is not _END:
                batch.append(item)
                if len(batch) == size:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield batch
            if item is _END:
                if self.error is not None:
                    raise OSError(f"reading {self.info.name} failed: {self.error}")
                return


@dataclass
class VideoSummary:
    source: str
    frames: int  # frames predicted and written
    seconds: float  # wall time of the whole loop
    read_fps: float  # decoding speed of the reader thread
    infer_fps: float
    write_fps: float  # drawing, encoding and the JSON/txt lines
    video: Path | None
    jsonl: Path | None
    interrupted: bool = False

    def line(self) -> str:
        stop = ", interrupted (Ctrl-C)" if self.interrupted else ""
        return (
            f"{self.frames} frames from {self.source}{stop}: read {self.read_fps:.1f} fps, "
            f"infer {self.infer_fps:.1f} fps, write {self.write_fps:.1f} fps, overall "
            f"{self.frames / max(self.seconds, 1e-9):.1f} fps"
        )


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def predict_video(
    cap: cv2.VideoCapture,
    info: VideoInfo,
    predict: Predictor,
    out_dir: Path,
    stride: int = 1,
    batch: int = 8,
    save_video: bool = True,
    save_jsonl: bool = True,
    labels_dir: Path | None = None,
) -> VideoSummary:
    """Detect objects in every ``stride``-th frame of a capture from :func:`open_video` (which
    this releases); write ``<stem>.mp4``
    (annotated, the source's size, at its frame rate / stride), ``<stem>.jsonl`` (one line per
    frame: ``frame``, ``time_s``, ``boxes``, ``scores``, ``classes``, ``names``) and, with
    ``labels_dir``, ``<stem>_<frame>.txt`` YOLO lines per frame.

    predict: RGB frames (H, W, 3) uint8 -> one prediction each (boxes in frame pixels).
    """
    if stride < 1:
        cap.release()
        raise ConfigError(f"vid_stride must be at least 1, got {stride}")
    reader = FrameReader(cap, info, stride).start()
    video_path = out_dir / f"{info.stem}.mp4" if save_video else None
    jsonl_path = out_dir / f"{info.stem}.jsonl" if save_jsonl else None
    writer: cv2.VideoWriter | None = None
    jsonl = jsonl_path.open("w") if jsonl_path else None
    frames, infer_s, write_s, interrupted = 0, 0.0, 0.0, False
    t_start = time.perf_counter()
    try:
        for chunk in reader.batches(batch):
            t0 = time.perf_counter()
            rgb = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for _, _, frame in chunk]
            preds = predict(rgb)
            t1 = time.perf_counter()
            for (index, t, _), img, pred in zip(chunk, rgb, preds, strict=True):
                if video_path is not None:
                    if writer is None:
                        writer = _open_writer(video_path, info.fps / stride, img.shape[1::-1])
                    writer.write(draw_detections(img, pred))
                if jsonl is not None:
                    record = {"frame": index, "time_s": round(t, 4), **prediction_record(pred)}
                    jsonl.write(json.dumps(record) + "\n")
                if labels_dir is not None:
                    lines = yolo_txt_lines(pred.boxes, pred.scores, pred.classes, img.shape[:2])
                    text = "\n".join(lines) + ("\n" if lines else "")
                    write_text_atomic(labels_dir / f"{info.stem}_{index}.txt", text)
            if jsonl is not None:
                jsonl.flush()  # a stopped run leaves whole lines
            frames += len(chunk)
            infer_s += t1 - t0
            write_s += time.perf_counter() - t1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        reader.stop()
        if writer is not None:
            writer.release()  # writes the container's index: the file plays
        if jsonl is not None:
            jsonl.close()
    return VideoSummary(
        info.name, frames, time.perf_counter() - t_start, _rate(reader.frames_read,
        reader.read_seconds), _rate(frames, infer_s), _rate(frames, write_s),
        video_path if writer is not None else None, jsonl_path, interrupted,
    )  # fmt: skip


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An MP4 (mp4v) writer of ``size`` (w, h); OSError naming the file when OpenCV cannot."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write video {path} (OpenCV has no mp4v encoder for it)")
    return writer
