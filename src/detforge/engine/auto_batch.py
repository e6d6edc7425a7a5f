"""``train.batch=auto``: choose the training batch with a short probe before the run starts.

- CUDA: the largest batch whose training step (forward, backward, optimizer step at
  ``train.imgsz`` with the run's model, loss and AMP) takes at most
  ``train.auto_batch_fraction`` of the GPU's memory (the caching allocator's peak, above what
  was reserved before the probe). Candidates: powers of two from 1 to 1024.
- CPU: the batch with the most images/s among 4, 8, 16, 32 and 64, each timed over a few
  steps, among those whose step raises the process's peak resident memory by at most the
  fraction of the RAM available when the probe starts (``MemAvailable`` of /proc/meminfo;
  the peak is the kernel's VmHWM, reset before each candidate).

Larger candidates need more memory, so a candidate over the limit, or one that runs out of
memory, ends the sweep. The probe trains a throw-away model on random images with random boxes
under a forked RNG: the run's weights and random streams are those of a run given the chosen
number. The candidates' table (images/s, memory, verdict) and the choice are logged. The number
replaces ``auto`` in the run's configuration, so config.yaml and checkpoints hold it (a resume
or a best.yaml trains with the number). Under torchrun, rank 0 probes and broadcasts its choice.
A ``batch`` like 0.6 (a memory fraction) is not a batch: it is rejected by the schema; set
``train.auto_batch_fraction`` instead.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ConfigError, RunConfig
from ..infer.device import autocast
from .distributed import DistInfo, broadcast_object

__all__ = ["Candidate", "choose_batch", "format_candidates", "resolve_auto_batch"]

log = logging.getLogger("detforge")

CPU_CANDIDATES = (4, 8, 16, 32, 64)
CUDA_CANDIDATES = tuple(2**i for i in range(11))  # 1 .. 1024
_PROBE_STEPS = 2  # timed steps per CPU candidate, after one untimed step

# batch -> (images per second, bytes the training step needs)
Measure = Callable[[int], tuple[float, float]]


@dataclass
class Candidate:
    batch: int
    images_per_s: float | None = None
    memory: float | None = None  # bytes
    verdict: str = ""  # "" (fits), "chosen", "over the memory limit", "out of memory"


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def choose_batch(
    candidates: Sequence[int], measure: Measure, limit: float, by: str
) -> tuple[int, list[Candidate]]:
    """Measure ``candidates`` (ascending) until one needs more than ``limit`` bytes or runs out
    of memory; among those that fit, the one with the most images/s (``by="throughput"``, the
    smaller batch on a tie) or the largest (``by="memory"``). Returns it and the table."""
    rows: list[Candidate] = []
    for b in candidates:
        try:
            speed, memory = measure(b)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            rows.append(Candidate(b, verdict="out of memory"))
            break
        rows.append(Candidate(b, speed, memory))
        if memory > limit:
            rows[-1].verdict = "over the memory limit"
            break
    fits = [r for r in rows if not r.verdict]
    if not fits:
        raise ConfigError(
            f"train.batch: auto found no batch of {list(candidates)} whose training step fits "
            f"in {limit / 1e9:.2f} GB ({format_candidates(rows)}); give a number, or raise "
            "train.auto_batch_fraction"
        )
    best = max(fits, key=lambda r: r.images_per_s) if by == "throughput" else fits[-1]
    best.verdict = "chosen"
    return best.batch, rows


def format_candidates(rows: Sequence[Candidate]) -> str:
    lines = ["batch  images/s  memory GB  verdict"]
    for r in rows:
        speed = f"{r.images_per_s:8.1f}" if r.images_per_s is not None else "       -"
        mem = f"{r.memory / 1e9:9.3f}" if r.memory is not None else "        -"
        lines.append(f"{r.batch:5d}  {speed}  {mem}  {r.verdict or 'fits'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the real probe
def _meminfo_kib(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to clear_refs); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _probe_parts(cfg: RunConfig, num_classes: int, device: torch.device):
    from ..losses.factory import build_loss_for_model
    from ..models.factory import build_model_from_config

    model = build_model_from_config(cfg.model, num_classes, cfg.train.imgsz)
    model = model.to(device, memory_format=torch.channels_last).train()
    # class weights change no cost; 'auto' would need the training labels. The family's own
    # loss (anchor-free or anchor head) with the model's current anchors.
    probe_cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, cls_weights=None))
    loss = build_loss_for_model(probe_cfg, model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)
    return model, loss, opt


def _step_fn(cfg: RunConfig, num_classes: int, device, amp_dtype) -> Callable[[int], None]:
    """One training step at batch b on random images with 4 random boxes each."""
    model, loss, opt = _probe_parts(cfg, num_classes, device)
    size, gen = cfg.train.imgsz, torch.Generator().manual_seed(0)

    def step(b: int) -> None:
        x = torch.rand(b, 3, size, size, generator=gen).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        n = 4 * b
        xy = torch.rand(n, 2, generator=gen) * size * 0.7
        wh = 8 + torch.rand(n, 2, generator=gen) * size * 0.3
        cls = torch.randint(0, num_classes, (n, 1), generator=gen).float()
        img = torch.arange(b).repeat_interleave(4).float()[:, None]
        targets = torch.cat([img, cls, xy, (xy + wh).clamp(max=size)], 1).to(device)
        with autocast(device, amp_dtype):
            outputs = model(x)
        sums, _ = loss.compute([o.float() for o in outputs], targets)
        sum(sums.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def cpu_measure(step: Callable[[int], None], baseline_kib: int) -> Measure:
    def measure(b: int) -> tuple[float, float]:
        gc.collect()
        exact = _reset_peak_rss()
        step(b)  # untimed: first-call allocations
        t0 = time.perf_counter()
        for _ in range(_PROBE_STEPS):
            step(b)
        speed = b * _PROBE_STEPS / (time.perf_counter() - t0)
        peak = _meminfo_kib("/proc/self/status", "VmHWM" if exact else "VmRSS") or baseline_kib
        return speed, (peak - baseline_kib) * 1024.0

    return measure


def cuda_measure(step: Callable[[int], None], device: torch.device, baseline: int) -> Measure:
    def measure(b: int) -> tuple[float, float]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        step(b)
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step(b)
        torch.cuda.synchronize(device)
        speed = b / (time.perf_counter() - t0)
        return speed, float(torch.cuda.max_memory_reserved(device) - baseline)

    return measure


def probe_batch(
    cfg: RunConfig, num_classes: int, device: torch.device, amp_dtype
) -> tuple[int, list[Candidate], float]:
    """Probe this machine (see the module doc): the batch, the table and the byte limit."""
    fraction = cfg.train.auto_batch_fraction
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            baseline = torch.cuda.memory_reserved(device)
            limit = fraction * torch.cuda.mem_get_info(device)[1]
            step = _step_fn(cfg, num_classes, device, amp_dtype)
            measure = cuda_measure(step, device, baseline)
            chosen = choose_batch(CUDA_CANDIDATES, measure, limit, by="memory")
            torch.cuda.empty_cache()
        else:
            available = _meminfo_kib("/proc/meminfo", "MemAvailable")
            if available is None:
                raise ConfigError(
                    "train.batch: auto on CPU reads the available RAM from /proc/meminfo, "
                    "which this system does not have; give a number"
                )
            limit = fraction * available * 1024.0
            baseline = _meminfo_kib("/proc/self/status", "VmRSS") or 0
            step = _step_fn(cfg, num_classes, device, amp_dtype)
            chosen = choose_batch(CPU_CANDIDATES, cpu_measure(step, baseline), limit, "throughput")
    gc.collect()
    return chosen[0], chosen[1], limit


def resolve_auto_batch(
    cfg: RunConfig,
    num_classes: int,
    device: torch.device,
    amp_dtype,
    dist: DistInfo,
    probe: Callable[..., tuple[int, list[Candidate], float]] | None = None,
) -> RunConfig:
    """``cfg`` with ``train.batch=auto`` replaced by the probed number (a copy; rank 0 probes,
    every process gets its number). ``probe``: :func:`probe_batch` unless given (tests)."""
    chosen = None
    if dist.is_main:
        batch, rows, limit = (probe or probe_batch)(cfg, num_classes, device, amp_dtype)
        what = "GPU memory" if device.type == "cuda" else "available RAM"
        rule = (
            "the largest batch" if device.type == "cuda" else "the most images/s"
        ) + f" within {cfg.train.auto_batch_fraction:g} of the {what} ({limit / 1e9:.2f} GB)"
        log.info(
            "batch=auto at %d px on %s: %d (%s)\n%s",
            cfg.train.imgsz, device, batch, rule, format_candidates(rows),
        )  # fmt: skip
        chosen = batch
    chosen = broadcast_object(chosen, dist)
    out = copy.deepcopy(cfg)
    out.train.batch = int(chosen)
    return out
