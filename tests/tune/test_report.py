"""The study's report.html: written after every trial, then with the plots; self-contained
(CSP, data-URI images, no scripts) and rendered offline by Chromium without a request."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser

import pytest
from chromium_probe import CHROMIUM, instrument, render

from detforge.report.html_report import CSP
from detforge.tune.space import parse_space
from detforge.tune.study import TuneOptions, Tuner


class _Page(HTMLParser):
    """Tags, fetchable references, and the cells of every table row."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.rows, self._row, self._cell = [], [], [], None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "srcset", "data", "poster")]
        if tag == "tr":
            self._row = []
            self.rows.append(self._row)
        self._cell = tag in ("td", "th")

    def handle_endtag(self, tag):
        self._cell = False

    def handle_data(self, data):
        if self._cell:
            self._row.append(data)


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


def test_study_report_after_each_trial_and_with_the_plots(tiny_args, tmp_path):
    settings = [a.replace("workers=", "data.workers=") for a in tiny_args]
    space = parse_space({"optim.lr0": [0.01, 0.02], "loss.box": [5.0]}, "rep")
    opts = TuneOptions(space, [*settings, "epochs=1"], trials=1, pruner="none")
    Tuner(opts).run()  # one trial, no finish(): the report is already there
    folder = tmp_path / "runs" / "tune" / "rep"
    page = _parse((folder / "report.html").read_text())
    header = ["trial", "state", "fitness", "epochs", "seconds", "pruned_at", "optim.lr0",
              "loss.box", "reason"]  # fmt: skip
    assert header in page.rows
    # the grid's other point is queued, not yet run
    assert [r[:2] for r in page.rows if r and r[0] in ("0", "1")] == [
        ["0", "complete"], ["1", "waiting"],
    ]  # fmt: skip

    tuner = Tuner(TuneOptions(space, [*settings, "epochs=1"], trials=2, pruner="none"))
    tuner.run()
    tuner.finish()
    text = (folder / "report.html").read_text()
    page = _parse(text)
    with open(folder / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    # the trials table holds trials.csv's rows (without the run folder; parameters as %.4g)
    table = [r for r in page.rows if r and r[0] in ("0", "1")]
    cell = {"optim.lr0": lambda v: f"{float(v):.4g}", "loss.box": lambda v: f"{float(v):.4g}"}
    assert table == [[cell.get(k, str)(r[k]) for k in header if r[k] != ""] for r in rows]
    best = min(rows, key=lambda r: (-float(r["fitness"]), int(r["trial"])))
    assert f"Trial {best['trial']}, fitness {best['fitness']}" in text
    assert ["optim.lr0", f"{float(best['optim.lr0']):.4g}"] in page.rows
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert "history.png" in pngs
    assert len(page.refs) == len(pngs) and all(
        r.startswith("data:image/png;base64,") for r in page.refs
    )
    assert f'content="{CSP}"' in text
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "url(" not in text and "@import" not in text
    assert re.search(r"<a href='best\.yaml'>", text)  # a relative link, nothing fetched

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(instrument(text))
    probe = render(probe_page, tmp_path)
    assert probe == {"images": len(pngs), "broken": 0, "violations": [], "requests": []}
