"""The run report: one self-contained report.html, checked statically and in headless Chromium
(every image decodes, nothing is requested from the network)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from chromium_probe import CHROMIUM, instrument, render

from detforge.data.dataset import YoloDataset
from detforge.data.datayaml import load_data_yaml
from detforge.data.demo import generate_demo_dataset
from detforge.eval.coco import COCOEvaluator
from detforge.infer.postprocess import Detections
from detforge.report.html_report import CSP, write_report
from detforge.report.run_report import dataset_ground_truth, write_run_analysis


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as training leaves it: results.csv plus the end-of-run analysis of a small
    generated val set, with jittered ground truth and a few false alarms as predictions."""
    tmp = tmp_path_factory.mktemp("report")
    yaml_path = generate_demo_dataset(tmp / "data", num_train=1, num_val=6, imgsz=128)
    ds = YoloDataset.from_spec(load_data_yaml(yaml_path), "val", imgsz=128, cache_dir=tmp)
    rng = np.random.default_rng(0)
    ev, preds = COCOEvaluator(num_classes=len(ds.names)), {}
    for i, (boxes, cls) in dataset_ground_truth(ds).items():
        keep = rng.uniform(size=len(cls)) < 0.8
        b = boxes[keep] + rng.normal(0, 2, (int(keep.sum()), 4))
        b = np.concatenate([b, [[5, 5, 30, 30]]])
        c = np.concatenate([cls[keep], [0]])
        s = rng.uniform(0.2, 1.0, len(c))
        preds[i] = Detections(
            torch.tensor(b, dtype=torch.float32), torch.tensor(s), torch.tensor(c)
        )
        ev.process(i, b, s, c, boxes, cls)
    run = tmp / "runs" / "exp"
    run.mkdir(parents=True)
    lines = [
        "epoch,train/box,train/cls,val/box,metrics/map50,metrics/map50_95,fitness,lr/backbone,lr/head"
    ]
    for e in range(1, 6):
        lines.append(
            f"{e},{2 / e},{1 / e},{2.2 / e},{0.1 * e},{0.05 * e},{0.05 * e},{0.01 / e},{0.02 / e}"
        )
    (run / "results.csv").write_text("\n".join(lines) + "\n")
    report = write_run_analysis(run, ev.evaluate(), preds, ds)
    assert report == run / "report.html"
    return run


class _Refs(HTMLParser):
    """Collects every tag and every attribute that can make a browser fetch something."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.imgs = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.imgs += tag == "img"
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data", "action", "background"):
                self.refs.append(v or "")


def test_report_is_self_contained(run_dir):
    text = (run_dir / "report.html").read_text()
    assert f'content="{CSP}"' in text
    p = _Refs()
    p.feed(text)
    assert p.imgs >= 4 + 6 + 1  # training curves, evaluation plots, diagnosis
    assert all(r.startswith("data:image/") for r in p.refs)
    assert not {"script", "link", "iframe", "object", "embed"} & set(p.tags)
    assert "url(" not in text and "@import" not in text
    for section in (
        "Training",
        "Evaluation",
        "Sample predictions",
        "Error diagnosis (TIDE)",
        "Worst images",
    ):
        assert f">{section}<" in text
    assert [f.name for f in run_dir.iterdir() if f.suffix == ".html"] == ["report.html"]


def test_empty_run_folder_still_gives_a_page(tmp_path):
    assert "Nothing to report" in write_report(tmp_path).read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium_offline(run_dir, tmp_path):
    text = (run_dir / "report.html").read_text()
    n_img = text.count("<img ")
    page = tmp_path / "report_probe.html"
    page.write_text(instrument(text))
    probe = render(page, tmp_path)
    assert probe == {"images": n_img, "broken": 0, "violations": [], "requests": []}
    # The probe can fail: a corrupt embedded image and an external one are both caught.
    bad = '<img src="data:image/png;base64,AAAA"><img src="http://example.com/x.png">'
    page.write_text(instrument(text, bad))
    probe = render(page, tmp_path)
    assert probe["images"] == n_img + 2 and probe["broken"] == 2
    assert probe["violations"] == ["http://example.com/x.png"]
