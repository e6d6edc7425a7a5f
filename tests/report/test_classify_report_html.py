"""report.html of a classification run: headline accuracies, the per-class table, the
confusion matrix, the hardest mistakes as embedded thumbnails and the training curves, in one
self-contained page (checked statically and, when chromium is there, rendered offline)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from chromium_probe import CHROMIUM, instrument, render

from detforge.eval.classify import classification_metrics
from detforge.eval.classify_validator import ClassifyValResult
from detforge.report.classify_report import write_classify_outputs
from detforge.report.html_report import CSP

NAMES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with results.csv and a hand-built validation of 6 images, two of them
    misclassified (img4: cat taken for ant at 0.7, img1: ant for bee at 0.6)."""
    tmp = tmp_path_factory.mktemp("cls_report")
    files = []
    for i in range(6):
        f = tmp / "images" / f"img{i}.png"
        f.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(f), np.full((300, 200, 3), 40 * i, np.uint8))
        files.append(f)
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1],
                      [0.7, 0.1, 0.2], [0.1, 0.1, 0.8]])  # fmt: skip
    val = ClassifyValResult(classification_metrics(probs, labels, 3), NAMES, files, probs)
    run = tmp / "run"
    run.mkdir()
    rows = ["epoch,train/cls,val/cls,val/loss,metrics/top1,metrics/top5,"
            "metrics/balanced_accuracy,metrics/macro_f1,fitness,lr/default/weights"]  # fmt: skip
    rows += [f"{e},{1 / e},{1.1 / e},{1.1 / e},{0.2 * e},1.0,{0.2 * e},{0.2 * e},{0.2 * e},0.01"
             for e in (1, 2, 3)]  # fmt: skip
    (run / "results.csv").write_text("\n".join(rows) + "\n")
    written = write_classify_outputs(run, val, plot=True)
    assert run / "report.html" in written
    return run


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.alts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data", "action", "background"):
                self.refs.append(v or "")
            if tag == "img" and k == "alt":
                self.alts.append(v)


def test_classify_report_holds_every_figure_and_nothing_external(run_dir):
    text = (run_dir / "report.html").read_text()
    assert f'content="{CSP}"' in text
    p = _Refs()
    p.feed(text)
    assert all(r.startswith("data:image/") for r in p.refs) and p.refs
    assert not {"script", "link", "iframe", "object", "embed"} & set(p.tags)
    assert "url(" not in text and "@import" not in text
    # headline: 4 of 6 right; top-5 covers all 3 classes; balanced = mean(1/2, 1, 1/2)
    head = re.search(r"<h2>Evaluation</h2>.*?</table>", text).group(0)
    assert [f"<td>{v}</td>" in head for v in ("6", "0.6667", "1", "0.6667")] == [True] * 4
    # per-class rows: ant P 1/2 R 1/2; bee P 2/3 R 1; cat P 1 R 1/2
    for row in ("<td>ant</td><td>2</td><td>0.5</td><td>0.5</td><td>0.5</td>",
                "<td>bee</td><td>2</td><td>0.6667</td><td>1</td><td>0.8</td>",
                "<td>cat</td><td>2</td><td>1</td><td>0.5</td><td>0.6667</td>"):  # fmt: skip
        assert row in text
    assert "Confusion matrix (rows: true class)" in p.alts
    assert {"Training losses", "Validation losses", "Accuracy and fitness"} <= set(p.alts)
    # the hardest mistakes, most confidently wrong first, as JPEG thumbnails of at most 160 px
    hard = [a for a in p.alts if " predicted " in a]
    assert hard == ["img4.png: cat predicted ant (0.70)", "img1.png: ant predicted bee (0.60)"]
    thumbs = re.findall(r'src="data:image/jpeg;base64,[^"]+" alt="img', text)
    assert len(thumbs) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_classify_report_renders_in_chromium_offline(run_dir, tmp_path):
    text = (run_dir / "report.html").read_text()
    n_img = text.count("<img ")
    page = tmp_path / "report_probe.html"
    page.write_text(instrument(text))
    probe = render(page, tmp_path)
    assert probe == {"images": n_img, "broken": 0, "violations": [], "requests": []}
    assert n_img == 5 + 1 + 2  # curves (2 losses, accuracy, other, lr), confusion, 2 thumbs
