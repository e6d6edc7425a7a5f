"""The serve app through FastAPI's TestClient: POST /predict answers the detector's boxes for a
form upload or a raw body, at the server's threshold or ``?conf=``; bad uploads get 4xx with a
message (not an image: 415; over the size limit: 413 before decoding; an image declaring too
many pixels: 413; a form without one file: 400); the page and its files come from the package
with a Content-Security-Policy that allows this server only."""

from __future__ import annotations

import re
import struct
import zlib

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient  # [dev] installs [serve]: a missing one fails

import detforge
from detforge.serve import app as serve_app
from detforge.serve.app import CSP, create_app


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return detforge.Detector.load(tiny_weights)


@pytest.fixture(scope="module")
def client(detector):
    def predict(img, conf):
        return detector.predict(img, conf=conf)[0]

    return TestClient(create_app(predict, detector.names, "tiny.pt", 0.2, max_upload_mb=0.25))


@pytest.fixture(scope="module")
def image() -> tuple[np.ndarray, bytes]:
    """An RGB image (96 x 128) and its PNG bytes (lossless: the server sees these pixels)."""
    rgb = np.full((96, 128, 3), 90, np.uint8)
    cv2.circle(rgb, (40, 40), 18, (240, 200, 40), -1)
    cv2.rectangle(rgb, (70, 30), (110, 80), (30, 60, 220), -1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return rgb, png.tobytes()


def _expected(detector, rgb, conf):
    p = detector.predict(rgb, conf=conf)[0]
    return p.boxes, p.scores.tolist(), p.classes.tolist(), [p.names[c] for c in p.classes]


def _check(body, expected):
    boxes, scores, classes, names = expected
    assert body["scores"] == scores and body["classes"] == classes and body["names"] == names
    np.testing.assert_allclose(np.array(body["boxes"]).reshape(-1, 4), boxes, atol=0.006)


def test_form_and_raw_uploads_give_the_detector_boxes(client, detector, image):
    rgb, png = image
    r = client.post("/predict", files={"file": ("a.png", png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"], body["conf"]) == (128, 96, 0.2)
    assert body["latency_ms"] > 0 and body["total_ms"] >= body["latency_ms"]
    _check(body, _expected(detector, rgb, 0.2))
    raw = client.post("/predict?conf=0.05", content=png, headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    low = raw.json()
    _check(low, _expected(detector, rgb, 0.05))
    assert len(low["scores"]) > len(body["scores"]) > 0  # the threshold acts


def test_not_an_image_is_415_with_a_message(client):
    for data in (b"hello, not an image", b""):
        r = client.post("/predict", files={"file": ("a.txt", data, "text/plain")})
        assert r.status_code == 415 and "not an image" in r.json()["detail"]


def test_upload_over_the_limit_is_413_before_decoding(client, monkeypatch):
    decoded = []
    monkeypatch.setattr(serve_app, "decode_image", lambda data: decoded.append(data))
    big = bytes(300 * 1024)  # over 0.25 MB
    r = client.post("/predict", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "over the limit of 0.25 MB" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(10):
            yield bytes(64 * 1024)

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "max_upload_mb" in r.json()["detail"]
    assert decoded == []


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with an empty pixel data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")


def test_an_image_declaring_too_many_pixels_is_413(client):
    r = client.post("/predict", content=_png_header(8000, 7000))  # over MAX_PIXELS
    assert r.status_code == 413 and "8000x7000 pixels" in r.json()["detail"]
    r = client.post("/predict", content=_png_header(100_000, 100_000))  # over PIL's own limit
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    r = client.post("/predict", content=_png_header(100, 100))  # no pixel data: not an image
    assert r.status_code == 415


def test_a_form_needs_exactly_one_file(client, image):
    _, png = image
    two = [("a", ("a.png", png, "image/png")), ("b", ("b.png", png, "image/png"))]
    r = client.post("/predict", files=two)
    assert r.status_code == 400 and "one image file" in r.json()["detail"]
    r = client.post("/predict?conf=2", files={"file": ("a.png", png, "image/png")})
    assert r.status_code == 422  # conf outside [0, 1]


def test_page_info_and_health(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "connect-src 'self'" in CSP and "default-src 'none'" in CSP
    texts = [page.text, client.get("/app.js").text, client.get("/style.css").text]
    for text in texts:
        assert not re.search(r"https?://|wss?://|[\"'(]//|@import|url\(", text), text[:200]
    info = client.get("/info").json()
    assert info["names"] == ["circle", "square", "bar"] and info["conf"] == 0.2
    assert info["page_conf"] == 0.01 and re.fullmatch(r"#[0-9a-f]{6}", info["colors"][0])
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 404  # no page that would load a CDN


def test_serve_binds_localhost_by_default_and_warns_for_other_hosts(
    tiny_weights, monkeypatch, caplog
):
    import uvicorn

    from detforge.cli import main

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    caplog.set_level("WARNING", logger="detforge")
    assert main(["serve", f"weights={tiny_weights}", "conf=0.3", "max_upload_mb=2"]) == 0
    app, kw = started[-1]
    assert (kw["host"], kw["port"]) == (
        "127.0.0.1",
        8000,
    ) and "no authentication" not in caplog.text
    info = TestClient(app).get("/info").json()
    assert info["conf"] == 0.3 and info["max_upload_mb"] == 2 and info["model"] == "tiny.pt"
    assert main(["serve", f"weights={tiny_weights}", "host=0.0.0.0", "port=8123"]) == 0
    assert (started[-1][1]["host"], started[-1][1]["port"]) == ("0.0.0.0", 8123)
    assert "serving on 0.0.0.0" in caplog.text and "no authentication" in caplog.text


def test_serve_predicts_in_predict_precision(tiny_weights, monkeypatch):
    import torch
    import uvicorn

    from detforge.api import Detector
    from detforge.cli import main

    real, dtypes = Detector.load, []

    def load(*a, **k):
        det = real(*a, **k)
        dtypes.append(det.amp_dtype)
        return det

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setattr(Detector, "load", load)
    for precision in ("fp32", "bf16"):
        assert main(["serve", f"weights={tiny_weights}", f"predict.precision={precision}"]) == 0
    assert dtypes == [None, torch.bfloat16]


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("openvino", ".xml")])
def test_serve_runs_exported_files_with_the_checkpoints_boxes(
    fmt, suffix, tiny_weights, image, tmp_path, monkeypatch
):
    import uvicorn

    from detforge.cli import main

    if fmt == "openvino":
        pytest.importorskip("openvino")
    exported = tmp_path / f"tiny{suffix}"
    assert main(["export", f"weights={tiny_weights}", f"format={fmt}", f"out={exported}"]) == 0
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    assert main(["serve", f"weights={exported}", "conf=0.05"]) == 0
    client = TestClient(started[-1])
    assert client.get("/info").json()["model"] == exported.name
    rgb, png = image
    body = client.post("/predict", files={"file": ("a.png", png, "image/png")}).json()
    fp32 = detforge.Detector.load(tiny_weights, amp="fp32")  # exported files run in fp32
    expected = fp32.predict(rgb, conf=0.05)[0]
    assert len(expected.scores) > 0 and body["classes"] == expected.classes.tolist()
    np.testing.assert_allclose(body["scores"], expected.scores, atol=5e-4)
    np.testing.assert_allclose(np.array(body["boxes"]).reshape(-1, 4), expected.boxes, atol=0.06)
