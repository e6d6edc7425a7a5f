"""Open a self-contained report.html in headless Chromium, offline, and read what a probe script
found once the page had loaded: images, broken images, CSP violations, network requests. Used by
the run report's and the study report's tests."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

from detforge.report.html_report import CSP

__all__ = ["CHROMIUM", "render", "instrument"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_PROBE = """<script>
window.__v = [];
document.addEventListener('securitypolicyviolation', e => window.__v.push(e.blockedURI));
window.addEventListener('load', () => {
  const im = [...document.images];
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({
    images: im.length,
    broken: im.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    violations: window.__v,
    requests: performance.getEntriesByType('resource').map(r => r.name),
  });
  document.body.appendChild(pre);
});
</script>"""


def render(page: Path, tmp: Path) -> dict:
    """Open ``page`` in headless Chromium (offline: every host name fails to resolve) and read
    what the probe script found once the page had loaded."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', out, re.S)
    assert m, f"the page did not finish loading in Chromium: {out[-500:]!r}"
    return json.loads(html.unescape(m.group(1)))


def instrument(text: str, extra_body: str = "") -> str:
    """The report plus the probe: the CSP is widened by inline scripts only (images and
    everything else stay as strict as in the report)."""
    text = text.replace(CSP, CSP + "; script-src 'unsafe-inline'")
    text = text.replace("<head>", "<head>" + _PROBE, 1)
    return text.replace("</body>", extra_body + "</body>", 1)
