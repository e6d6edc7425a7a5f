"""The served page in headless Chromium, driven over the DevTools protocol: ``detforge serve``
runs in a subprocess on a free localhost port, an image is uploaded through the page's file
input, and the boxes the page draws (its canvas's data-boxes) equal those ``POST /predict``
answers for the same image at the slider's threshold, before and after the slider moves; every
request the page makes goes to the server. Skips only when Chromium is absent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read()
    except OSError:
        return None


class DevTools:
    """A minimal DevTools-protocol client over one page's websocket: ``call`` waits for its
    answer and keeps every event that arrives meanwhile in ``events``."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def server(tiny_weights, tmp_path):
    port = _free_port()
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "detforge.cli", "serve", f"weights={tiny_weights}",
         f"port={port}", "conf=0.2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("detforge serve", lambda: proc.poll() is not None or _get(base + "/health"))
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def devtools(tmp_path):
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = None
    try:
        active = profile / "DevToolsActivePort"
        _wait("chromium's DevTools port", lambda: active.is_file() and active.read_text().strip())
        port = active.read_text().split()[0]
        targets = json.loads(_wait("a page", lambda: _get(f"http://127.0.0.1:{port}/json/list")))
        page = next(t for t in targets if t["type"] == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        yield client
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        proc.wait(timeout=30)


def _post(base: str, data: bytes, conf: float) -> dict:
    req = urllib.request.Request(f"{base}/predict?conf={conf}", data=data,
                                 headers={"Content-Type": "image/png"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _as_drawn(body: dict) -> list:
    """The JSON answer in the page's data-boxes form, order-free."""
    rows = zip(body["boxes"], body["scores"], body["classes"], strict=True)
    return sorted([*b, s, c] for b, s, c in rows)


def test_page_draws_the_boxes_of_the_json_endpoint_and_stays_local(server, devtools, tmp_path):
    rgb = np.full((120, 160, 3), 90, np.uint8)
    cv2.circle(rgb, (50, 50), 22, (240, 200, 40), -1)
    cv2.rectangle(rgb, (90, 40), (140, 100), (30, 60, 220), -1)
    image = tmp_path / "shapes.png"
    cv2.imwrite(str(image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    dt = devtools
    dt.call("Network.enable")
    dt.call("Page.enable")
    # The page's CSP would block an outside request before the network sees it; bypassed
    # here, any request the page itself makes shows in the Network events (and fails to
    # resolve: every host name but 127.0.0.1 is mapped to nothing).
    dt.call("Page.setBypassCSP", enabled=True)
    dt.call("Page.navigate", url=server + "/")
    _wait("the page", lambda: dt.eval("document.body && document.body.dataset.state") == "ready")
    assert dt.eval("document.getElementById('conf').value") == "0.2"  # the server's conf=
    root = dt.call("DOM.getDocument")["root"]["nodeId"]
    node = dt.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    dt.call("DOM.setFileInputFiles", nodeId=node, files=[str(image)])
    _wait("the boxes", lambda: dt.eval("document.body.dataset.state") in ("drawn", "error"))
    assert dt.eval("document.body.dataset.state") == "drawn", dt.eval("$('status').textContent")

    def drawn() -> list:
        return sorted(json.loads(dt.eval("document.getElementById('view').dataset.boxes")))

    data = image.read_bytes()
    at_02 = _as_drawn(_post(server, data, 0.2))
    assert drawn() == at_02 and len(at_02) > 0
    assert dt.eval("[view.width, view.height]") == [160, 120]
    dt.eval("conf.value = '0.08'; conf.dispatchEvent(new Event('input'))")
    at_008 = _as_drawn(_post(server, data, 0.08))
    assert drawn() == at_008 and len(at_008) > len(at_02)

    dt.eval("1")  # drain the events sent meanwhile
    urls = [e["params"]["request"]["url"] for e in dt.events
            if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
    paths = {u.removeprefix(server).split("?")[0] for u in urls}
    assert {"/", "/app.js", "/style.css", "/info", "/predict"} <= paths
    outside = [u for u in urls if not u.startswith(server + "/") and not u.startswith("blob:")]
    assert outside == []
    predicts = [u for u in urls if "/predict" in u]
    assert len(predicts) == 1  # the slider filtered in the page, with no new request
