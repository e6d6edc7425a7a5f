"""bench/train_compare.py reports every system's memory in one unit (MiB), and the benchmark
docs point at the shared data relative to the repository, not at one machine's paths."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def train_compare():
    spec = importlib.util.spec_from_file_location("train_compare", BENCH / "train_compare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_compare"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        del sys.modules["train_compare"]


def fake_detforge_run(out: Path, label: str, model: str, mem_rows: str, log: str) -> None:
    """The files collect_detforge reads for a finished 2-epoch detforge system ``label``;
    ``mem_rows`` continues results.csv after ``1,10.0,`` (epoch 1's peak_mem_mb onwards)."""
    run = out / "runs" / label
    run.mkdir(parents=True)
    (run / "results.csv").write_text(f"epoch,epoch_time,peak_mem_mb\n1,10.0,{mem_rows}\n")
    (run / "config.yaml").write_text(f"model: {{name: {model}}}\n")
    (out / "logs").mkdir()
    (out / "logs" / f"{label}.train.log").write_text(log + "\n")
    (out / "scoring" / label).mkdir(parents=True)
    (out / "scoring" / label / "val_predictions.json").write_text("[]")


def test_detforge_memory_is_converted_from_mb_to_mib(train_compare, tmp_path, monkeypatch):
    tc = train_compare
    # detforge's results.csv: MB = 10^6 bytes; 2097.152 MB = 2000 MiB
    fake_detforge_run(tmp_path, "yolo-n", "yolo-n", "1000\n2,10.0,2097.152",
                      "done (40.6 train images/s)")  # fmt: skip
    figures = {"params": 1, "gflops_416": 1.0, "gflops_640": 2.0}
    monkeypatch.setattr(tc, "detforge_model_figures", lambda weights, sizes: figures)
    budget = tc.Budget("d.yaml", 416, 2, 16, 0, 0, 1.0)
    ctx = tc.Context(tmp_path, Path("python"), Path("detforge"), 0, 20)
    system = tc.parse_system("detforge:yolo-n", {"yolo-n"})
    record = tc.collect_detforge(system, budget, ctx)
    assert record["peak_mem_mib"] == 2000.0
    assert "converted to MiB" in record["peak_mem_note"]


def test_table_column_holds_the_mib_figure(train_compare):
    stats = {"map50_95": 0.2, "map50": 0.4, "map75": 0.1, "map_small": 0.1}
    system = {"status": "ok", "label": "yolo-n", "model": "yolo-n", "train_images": 20,
              "scores": {"stats": stats}, "train_images_per_s": 10.0, "train_seconds": 4.0,
              "peak_mem_mib": 2000.0, "params": 2.7e6, "gflops": 2.9}  # fmt: skip
    report = {
        "budget": {"data": "d/data.yaml", "imgsz": 416, "epochs": 2, "batch": 16, "seed": 0,
                   "workers": 0, "fraction": 1.0},
        "machine": {"cpu_count": 2, "cpu": "x"}, "ground_truth": {"images": 5, "boxes": 9},
        "ratios": {}, "ratios_reference": "peer", "systems": [system], "command": "cmd",
    }  # fmt: skip
    header, _, row = train_compare.markdown(report).splitlines()[2:5]
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[9] == "peak MiB"
    assert [c.strip() for c in row.strip("|").split("|")][9] == "2000"


def test_benchmark_docs_name_no_machine_paths():
    files = [BENCH / "README.md", BENCH / "peer" / "README.md", *BENCH.glob("*.py"),
             *BENCH.glob("peer/*.py")]  # fmt: skip
    for f in files:
        hits = re.findall(r"/work/shared\S*", f.read_text())
        assert not hits, f"{f}: {hits} (use ../shared, the folder beside the repository)"


def test_peer_spec_takes_a_label_and_a_hyp_file(train_compare, tmp_path):
    hyp = tmp_path / "best_hyperparameters.yaml"
    system = train_compare.parse_system(f"peer:yolo11n.yaml:label=peer-tuned,hyp={hyp}", set())
    assert (system.label, system.model) == ("peer-tuned", "yolo11n.yaml")
    budget = train_compare.Budget("d.yaml", 320, 30, 16, 1, 2, 1.0)
    cmd = train_compare.peer_command(system, budget, tmp_path, Path("python"))
    assert cmd[-1] == f"--hyp={hyp}"
    assert cmd[cmd.index("--seed") + 1] == "1"
    plain = train_compare.parse_system("peer:yolo11n.yaml", set())
    assert plain.label == "peer-yolo11n" and "--hyp" not in " ".join(
        train_compare.peer_command(plain, budget, tmp_path, Path("python"))
    )
    with pytest.raises(ValueError, match="label=NAME,hyp=FILE,threads=N"):
        train_compare.parse_system("peer:yolo11n.yaml:lr0=0.1", set())
    two = train_compare.parse_system("peer:yolo11n.yaml:label=p2,threads=2", set())
    assert train_compare.peer_command(two, budget, tmp_path, Path("python"))[-1] == "--threads=2"
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        train_compare.parse_system("peer:yolo11n.yaml:threads=0", set())


def test_a_system_imgsz_is_trained_validated_measured_and_shown(train_compare, tmp_path,
                                                               monkeypatch):  # fmt: skip
    tc = train_compare
    budget = tc.Budget("d.yaml", 416, 2, 16, 0, 0, 1.0)
    system = tc.parse_system("detforge:retinanet:model=retinanet-r50-fpn,imgsz=320", set())
    train, val = tc.detforge_commands(system, budget, tmp_path, Path("detforge"))
    assert [a for a in train if a.startswith("imgsz=")][-1] == "imgsz=320"  # the override wins
    assert [a for a in val if a.startswith("imgsz=")] == ["imgsz=320"]
    plain = tc.parse_system("detforge:yolo-n", {"yolo-n"})
    assert "imgsz=416" in tc.detforge_commands(plain, budget, tmp_path, Path("detforge"))[1]

    fake_detforge_run(tmp_path, "retinanet", "retinanet-r50-fpn", "1000\n2,10.0,1000", "done")
    sizes_asked = []

    def figures(weights, sizes):
        sizes_asked.append(sizes)
        return {"params": 1, "gflops_320": 1.0, "gflops_640": 2.0}

    monkeypatch.setattr(tc, "detforge_model_figures", figures)
    ctx = tc.Context(tmp_path, Path("python"), Path("detforge"), 0, 20)
    record = tc.collect_detforge(system, budget, ctx)
    assert sizes_asked == [[320, 640]] and record["imgsz"] == 320 and record["gflops"] == 1.0
    stats = {"map50_95": 0.2, "map50": 0.4, "map75": 0.1, "map_small": 0.1}
    record.update(status="ok", label="retinanet", scores={"stats": stats})
    report = {
        "budget": {"data": "d/data.yaml", "imgsz": 416, "epochs": 2, "batch": 16, "seed": 0,
                   "workers": 0, "fraction": 1.0},
        "machine": {"cpu_count": 2, "cpu": "x"}, "ground_truth": {"images": 5, "boxes": 9},
        "ratios": {}, "ratios_reference": "peer", "systems": [record], "command": "cmd",
    }  # fmt: skip
    row = tc.markdown(report).splitlines()[4]
    assert row.split("|")[2].strip() == "retinanet-r50-fpn (imgsz 320)"


FAKE_DETFORGE = """#!{python}
# a stand-in for the detforge CLI: logs its arguments; train writes a run folder (and fails
# mid-epoch 2 unless resumed), val writes predictions
import sys
from pathlib import Path

args = dict(a.split("=", 1) for a in sys.argv[2:])
calls = Path({calls!r})
calls.open("a").write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "train":
    run = Path(args["project"]) / args["name"]
    (run / "weights").mkdir(parents=True, exist_ok=True)
    (run / "weights" / "last.pt").write_text("ckpt")
    (run / "config.yaml").write_text("model: {{name: yolo-n}}\\n")
    if "resume" not in args:
        (run / "results.csv").write_text("epoch,epoch_time,peak_mem_mb\\n1,10.0,1000\\n")
        sys.exit("interrupted in epoch 2")
    print("resumed from x at epoch 2, batch 3")
    with (run / "results.csv").open("a") as f:
        f.write("2,1.0,1000\\n3,10.0,1000\\n")
    print("done (99.0 train images/s)")
else:
    out = Path(args["project"]) / args["name"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_predictions.json").write_text("[]")
"""


def test_an_interrupted_detforge_training_continues_from_last_pt(train_compare, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    tc = train_compare
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "detforge"
    fake.write_text(FAKE_DETFORGE.format(python=sys.executable, calls=str(calls)))
    fake.chmod(0o755)
    figures = {"params": 1, "gflops_416": 1.0, "gflops_640": 2.0}
    monkeypatch.setattr(tc, "detforge_model_figures", lambda weights, sizes: figures)
    budget = tc.Budget("d.yaml", 416, 3, 16, 0, 0, 1.0)
    out = tmp_path / "out"
    system = tc.parse_system("detforge:yolo-n", {"yolo-n"})

    first = tc.run_detforge(system, budget, tc.Context(out, Path("python"), fake, 0, 20))
    assert first["status"] == "failed"
    last = out / "runs" / "yolo-n" / "weights" / "last.pt"
    (out / "runs" / "yolo-n" / "kept").write_text("")  # the interrupted run folder survives

    record = tc.run_detforge(system, budget, tc.Context(out, Path("python"), fake, 0, 20, True))
    assert record["status"] == "ok"
    train_calls = [c for c in calls.read_text().splitlines() if c.startswith("train")]
    assert train_calls[1] == train_calls[0] + f" resume={last}"
    assert (out / "runs" / "yolo-n" / "kept").exists()
    # epoch 2 was entered at batch 3: its 1.0 s covers only the resumed part and is left out
    assert record["resumed_mid_epoch"] == [2]
    assert record["train_images_per_s"] == 20 * 2 / 20.0
    assert record["epochs_done"] == 3 and record["train_wall_seconds"] is None
    assert record["trainer_printed_images_per_s"] == 99.0
    # the record names the plain commands, so --skip-existing reuses the finished system
    assert "resume=" not in record["commands"][0]

    # without --skip-existing, or after the train command changed, training starts over
    tc.run_detforge(system, budget, tc.Context(out, Path("python"), fake, 0, 20))
    assert not (out / "runs" / "yolo-n" / "kept").exists()
    assert "resume=" not in calls.read_text().splitlines()[-2]
    tc.run_detforge(system, budget, tc.Context(out, Path("python"), fake, 0, 20))  # fails again
    changed = tc.parse_system("detforge:yolo-n:loss.box=5", {"yolo-n"})
    tc.run_detforge(changed, budget, tc.Context(out, Path("python"), fake, 0, 20, True))
    assert "resume=" not in [c for c in calls.read_text().splitlines() if "train" in c][-1]
