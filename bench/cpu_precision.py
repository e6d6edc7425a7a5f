"""Training-step speed on this CPU in fp32 and under bf16 autocast (chooses train.amp=auto).

One step = forward, loss, backward, gradient clipping, SGD step and EMA update of detforge
``yolo-n`` on a fixed synthetic batch (12 boxes per image), channels-last, median of the timed
steps after warm-up steps. The data pipeline is not involved.

    .venv/bin/python bench/cpu_precision.py --imgsz 416 --batch 16 --steps 8

Writes bench/results/cpu_precision.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads

import torch  # noqa: E402

from detforge.engine.ema import ModelEMA  # noqa: E402
from detforge.engine.optim import build_optimizer  # noqa: E402
from detforge.infer.device import cpu_has_fast_bf16  # noqa: E402
from detforge.losses import DetectionLoss, total_loss  # noqa: E402
from detforge.models import build_model  # noqa: E402


def synthetic_targets(batch: int, imgsz: int, per_image: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = []
    for b in range(batch):
        for _ in range(per_image):
            xy = torch.rand(2, generator=g) * (imgsz - 40)
            wh = torch.rand(2, generator=g) * 32 + 4
            rows.append([b, int(torch.randint(0, 4, (1,), generator=g)), *xy, *(xy + wh)])
    return torch.tensor(rows, dtype=torch.float32)


def time_steps(dtype: torch.dtype | None, imgsz: int, batch: int, steps: int, warmup: int):
    torch.manual_seed(0)
    model = build_model("yolo-n", 4).to(memory_format=torch.channels_last).train()
    loss_fn = DetectionLoss(4, model.strides)
    opt = build_optimizer(model, "sgd", 0.01)
    ema = ModelEMA(model)
    x = torch.rand(batch, 3, imgsz, imgsz).contiguous(memory_format=torch.channels_last)
    t = synthetic_targets(batch, imgsz)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(x)
        loss = total_loss(loss_fn([o.float() for o in out], t), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default="bench/results/cpu_precision.json")
    args = ap.parse_args()
    res = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        s = time_steps(dtype, args.imgsz, args.batch, args.steps, args.warmup)
        res[name] = {"step_s": s, "images_per_s": args.batch / s}
    ratio = res["bf16"]["images_per_s"] / res["fp32"]["images_per_s"]
    out = {
        "command": "python bench/cpu_precision.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "fast_bf16": cpu_has_fast_bf16(),
        "torch": torch.__version__,
        "results": res,
        "bf16_over_fp32": ratio,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| precision | step s | images/s |\n|---|---:|---:|")
    for k, v in res.items():
        print(f"| {k} | {v['step_s']:.3f} | {v['images_per_s']:.1f} |")
    print(f"\nbf16 / fp32: {ratio:.2f}x  (AVX-512-BF16 or AMX: {cpu_has_fast_bf16()})")


if __name__ == "__main__":
    main()
