"""batch=auto: the chooser on injected measurements (no timing, no GPU), and the number it
chooses recorded in the run's saved configuration."""

import pytest
import torch
import yaml

import detforge.engine.auto_batch as auto_batch
from detforge.config import ConfigError, load_config
from detforge.engine.auto_batch import (
    CPU_CANDIDATES,
    CUDA_CANDIDATES,
    choose_batch,
    cpu_measure,
    resolve_auto_batch,
)
from detforge.engine.checkpoint import load_checkpoint
from detforge.engine.distributed import DistInfo
from detforge.engine.trainer import Trainer

GB = 1e9


def fake_measure(speeds, memory_per_image, oom_from=None):
    """images/s from a table, memory linear in the batch; out of memory from a batch on."""
    calls = []

    def measure(b):
        calls.append(b)
        if oom_from is not None and b >= oom_from:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return speeds[b], 0.5 * GB + memory_per_image * b

    return measure, calls


def test_cpu_picks_the_best_throughput_within_the_memory_limit():
    speeds = {4: 30.0, 8: 41.0, 16: 45.0, 32: 52.0, 64: 60.0}
    # 0.1 GB an image: 32 needs 3.7 GB, over a limit of 3 GB; 64 is never tried
    measure, calls = fake_measure(speeds, 0.1 * GB)
    batch, rows = choose_batch(CPU_CANDIDATES, measure, 3 * GB, by="throughput")
    assert batch == 16 and calls == [4, 8, 16, 32]
    assert [r.verdict for r in rows] == ["", "", "chosen", "over the memory limit"]
    # with room for all, the fastest wins even if it is not the largest
    speeds[64] = 50.0
    measure, _ = fake_measure(speeds, 0.01 * GB)
    assert choose_batch(CPU_CANDIDATES, measure, 3 * GB, by="throughput")[0] == 32


def test_candidates_that_run_out_of_memory_are_skipped():
    speeds = dict.fromkeys(CPU_CANDIDATES, 10.0) | {8: 20.0}
    measure, calls = fake_measure(speeds, 0.0, oom_from=16)
    batch, rows = choose_batch(CPU_CANDIDATES, measure, 3 * GB, by="throughput")
    assert batch == 8 and calls == [4, 8, 16] and rows[-1].verdict == "out of memory"
    measure, _ = fake_measure(speeds, 0.0, oom_from=4)
    with pytest.raises(ConfigError, match="train.batch"):
        choose_batch(CPU_CANDIDATES, measure, 3 * GB, by="throughput")

    def broken(b):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):  # only out-of-memory errors are a candidate's verdict
        choose_batch(CPU_CANDIDATES, broken, 3 * GB, by="throughput")


def test_cuda_takes_the_largest_batch_that_fits_its_memory_fraction():
    speeds = dict.fromkeys(CUDA_CANDIDATES, 100.0)
    # a 24 GB card at fraction 0.6: 14.4 GB; 0.05 GB an image -> 256 (13.3 GB), not 512
    measure, calls = fake_measure(speeds, 0.05 * GB)
    batch, _ = choose_batch(CUDA_CANDIDATES, measure, 0.6 * 24 * GB, by="memory")
    assert batch == 256 and calls[-1] == 512
    measure, _ = fake_measure(speeds, 0.0, oom_from=64)  # the allocator fails before the limit
    assert choose_batch(CUDA_CANDIDATES, measure, 0.6 * 24 * GB, by="memory")[0] == 32


def test_the_cpu_probe_measures_a_real_tiny_step(tiny_args):
    """The real measurement on a tiny model: positive images/s and memory, any batch works."""
    cfg = load_config(tiny_args + ["model=yolo-n"], env={})
    step = auto_batch._step_fn(cfg, 2, torch.device("cpu"), None)
    speed, memory = cpu_measure(step, 0)(2)
    assert speed > 0 and memory > 0


def test_the_probe_trains_an_anchor_family_model_with_its_own_loss(tiny_args):
    """yolov5-* has an anchor head: the probe's loss must be the family's (AnchorLoss)."""
    from detforge.losses.anchor import AnchorLoss

    cfg = load_config(tiny_args + ["model=yolov5-n"], env={})
    model, loss, _ = auto_batch._probe_parts(cfg, 2, torch.device("cpu"))
    assert isinstance(loss, AnchorLoss)
    speed, memory = cpu_measure(auto_batch._step_fn(cfg, 2, torch.device("cpu"), None), 0)(2)
    assert speed > 0 and memory > 0


def test_the_chosen_number_is_in_config_yaml_and_checkpoints(tiny_args, monkeypatch, caplog):
    caplog.set_level("INFO", logger="detforge")
    speeds = {4: 30.0, 8: 41.0, 16: 35.0, 32: 20.0, 64: 10.0}

    def probe(cfg, num_classes, device, amp_dtype):
        measure, _ = fake_measure(speeds, 0.0)
        return (*choose_batch(CPU_CANDIDATES, measure, 1 * GB, "throughput"), 1 * GB)

    monkeypatch.setattr(auto_batch, "probe_batch", probe)
    args = [a for a in tiny_args if not a.startswith(("batch=", "epochs="))]
    cfg = load_config(args + ["batch=auto", "epochs=1"], env={})
    tr = Trainer(cfg)
    res = tr.fit()
    assert cfg.train.batch == "auto"  # the caller's configuration is not changed
    assert tr.cfg.train.batch == 8 and tr.data.train_loader.batch_size == 8
    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert saved["train"]["batch"] == 8
    assert load_checkpoint(res.run_dir / "weights" / "last.pt")["config"]["train"]["batch"] == 8
    assert "batch=auto at 64 px on cpu: 8 (the most images/s" in caplog.text
    assert "    8      41.0" in caplog.text and "chosen" in caplog.text


def test_rank_0_chooses_for_every_process(tiny_args, monkeypatch):
    cfg = load_config(tiny_args + ["batch=auto"], env={})
    sent = []
    monkeypatch.setattr(auto_batch, "broadcast_object", lambda obj, dist: sent.append(obj) or 12)

    def no_probe(*a):
        raise AssertionError("only rank 0 probes")

    out = resolve_auto_batch(cfg, 2, torch.device("cpu"), None, DistInfo(1, 1, 2), no_probe)
    assert sent == [None] and out.train.batch == 12


def test_bad_batch_values_are_rejected_by_name(tiny_args):
    for bad in ("0.6", "big", "0"):
        with pytest.raises(ConfigError, match="train.batch"):
            load_config(tiny_args + [f"batch={bad}"], env={})
    with pytest.raises(ConfigError, match="train.batch: auto is not supported with train.stages"):
        load_config(tiny_args + ["batch=auto", "train.stages=[{epochs: 2}]"], env={})
    with pytest.raises(ConfigError, match="train.auto_batch_fraction"):
        load_config(tiny_args + ["train.auto_batch_fraction=1.5"], env={})


def test_commands_that_do_not_train_name_the_batch_they_need(tiny_args, tmp_path):
    from detforge.engine.tools import plot_schedule_from_config

    cfg = load_config(tiny_args + ["batch=auto"], env={})
    with pytest.raises(ConfigError, match="train.batch: auto is chosen when training starts"):
        plot_schedule_from_config(cfg, tmp_path / "lr.png")
    from detforge.engine.setup_data import build_val_loader

    with pytest.raises(ConfigError, match="eval.batch"):
        build_val_loader(cfg, None, 0)


def test_the_real_probe_leaves_the_run_as_if_the_number_was_given(tiny_args, monkeypatch):
    """The probe builds and trains a model under a forked RNG: batch=auto choosing 8 trains
    exactly like batch=8 (same losses and metrics)."""
    monkeypatch.setattr(auto_batch, "CPU_CANDIDATES", (8,))
    args = [a for a in tiny_args if not a.startswith(("batch=", "epochs="))] + ["epochs=1"]
    rows = []
    for batch, name in (("auto", "auto"), ("8", "fixed")):
        res = Trainer(load_config(args + [f"batch={batch}", f"name={name}"], env={})).fit()
        text = (res.run_dir / "results.csv").read_text().splitlines()
        head = text[0].split(",")
        keep = [i for i, k in enumerate(head) if "time" not in k and "peak_mem" not in k]
        rows.append([[line.split(",")[i] for i in keep] for line in text])
    assert rows[0] == rows[1]


def test_a_batch_fraction_is_rejected_with_what_batch_takes(tiny_args):
    with pytest.raises(ConfigError, match=r"train.batch: expected an integer or 'auto', got 0.6"):
        load_config(tiny_args + ["batch=0.6"], env={})
