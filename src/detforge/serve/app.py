"""The HTTP app of ``detforge serve`` (extra ``[serve]``: FastAPI, uvicorn, python-multipart).

- ``POST /predict[?conf=0.25]``: an image as a multipart form file (any field name) or as the
  raw request body -> JSON ``boxes`` (xyxy pixels), ``scores``, ``classes``, ``names``,
  ``width``, ``height``, ``conf``, ``latency_ms`` (the detector's) and ``total_ms`` (decode and
  detect). A body over the size limit is refused with 413 before it is read in full (by its
  Content-Length, else while streaming), an image over ``MAX_PIXELS`` with 413 before it is
  decoded, and bytes that do not decode as an image with 415.
- ``GET /info``: the model, class names and colours, default threshold, limits; ``GET /health``.
- ``GET /``: one page (``static/``: HTML, JS, CSS shipped in the package, nothing fetched from
  elsewhere, a Content-Security-Policy that allows this server only) to choose or drop an image
  and filter its boxes with a confidence slider, client-side.

:func:`create_app` builds the app without starting a server (tests use FastAPI's TestClient).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from importlib import resources

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..report.draw import class_color
from .results import PredictionLike, prediction_record

__all__ = ["create_app", "decode_image", "CSP", "PAGE_CONF", "MAX_PIXELS"]

PAGE_CONF = 0.01  # the page asks for every box above this and filters with its slider
MAX_PIXELS = 50_000_000  # a few-kB PNG can declare a 100k x 100k canvas; refused undecoded
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

Predict = Callable[[np.ndarray, float], PredictionLike]


def decode_image(data: bytes) -> np.ndarray:
    """Image bytes -> RGB uint8 (H, W, 3), EXIF orientation applied (as browsers show it).

    Raises HTTPException 413 for more than ``MAX_PIXELS`` (read from the header) and 415 for
    bytes that are not a decodable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
    except Image.DecompressionBombError as e:  # PIL's own, higher limit
        raise HTTPException(413, f"image over the limit of {MAX_PIXELS} pixels: {e}") from e
    except (UnidentifiedImageError, OSError, ValueError):
        w = h = 0  # PIL does not know it; OpenCV may still decode it
    if w * h > MAX_PIXELS:
        raise HTTPException(413, f"image of {w}x{h} pixels is over the limit of {MAX_PIXELS}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise HTTPException(415, "the upload is not an image that can be decoded (JPEG, PNG...)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = f"upload over the limit of {limit / 2**20:g} MB (max_upload_mb)"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, body: bytes) -> bytes:
    """The uploaded file of a multipart form, or the body itself."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as e:  # a malformed form: the client's error, said as such
        raise HTTPException(400, f"cannot parse the multipart form: {e}") from e
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if len(files) != 1:
        raise HTTPException(400, f"expected one image file in the form, got {len(files)}")
    return await files[0].read()


def create_app(
    predict: Predict,
    names: list[str],
    model: str = "model",
    conf: float = 0.25,
    max_upload_mb: float = 10.0,
) -> FastAPI:
    """The app around ``predict(image RGB (H, W, 3) uint8, conf) -> prediction`` (boxes in the
    image's pixels). Calls of ``predict`` are serialised: one detection at a time uses the
    cores better than several competing for them."""
    limit = int(max_upload_mb * 2**20)
    lock = threading.Lock()
    page = {name: (resources.files(__package__) / "static" / name).read_bytes()
            for name in PAGE_FILES}  # fmt: skip
    info = {
        "model": model,
        "names": list(names),
        "colors": ["#{:02x}{:02x}{:02x}".format(*class_color(c)) for c in range(len(names))],
        "conf": conf,
        "page_conf": min(PAGE_CONF, conf),
        "max_upload_mb": max_upload_mb,
    }
    app = FastAPI(title="detforge", docs_url=None, redoc_url=None, openapi_url=None)

    def detect(img: np.ndarray, threshold: float) -> PredictionLike:
        with lock:
            return predict(img, threshold)

    @app.post("/predict")
    async def predict_image(request: Request, conf: float | None = Query(None, ge=0, le=1)) -> dict:
        body = await _read_body(request, limit)
        t0 = time.perf_counter()
        img = await run_in_threadpool(decode_image, await _image_bytes(request, body))
        threshold = info["conf"] if conf is None else conf
        pred = await run_in_threadpool(detect, img, threshold)
        return {
            "width": img.shape[1],
            "height": img.shape[0],
            "conf": threshold,
            "latency_ms": round(float(pred.latency_ms), 2),
            "total_ms": round((time.perf_counter() - t0) * 1000, 2),
            **prediction_record(pred),
        }

    @app.get("/info")
    def model_info() -> dict:
        return info

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    def static(name: str) -> Response:
        headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
        return Response(page[name], media_type=PAGE_FILES[name], headers=headers)

    app.get("/", include_in_schema=False)(lambda: static("index.html"))
    app.get("/app.js", include_in_schema=False)(lambda: static("app.js"))
    app.get("/style.css", include_in_schema=False)(lambda: static("style.css"))
    return app
