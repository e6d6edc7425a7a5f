"""Learning-rate range test (``detforge lr-find``): sweep the lr exponentially, watch the loss.

The sweep trains for ``iters`` optimizer steps with the lr rising geometrically from
``start_lr`` to ``end_lr``. The loss of each step is smoothed with an exponential moving average
(bias-corrected, so the first values are not pulled towards 0); the sweep stops early once the
smoothed loss exceeds ``diverge`` times its best value, or the loss is not finite.

Suggestion: the lr where the smoothed loss falls fastest, i.e. the most negative slope of the
smoothed loss against log10(lr), ignoring the first and last tenth of the points (at least one at
each end), where the average is still settling or the loss is blowing up. It is meant as an lr0
(for the group with the largest multiplier) and is None when too few points remain.

Every step is the training step (:class:`~detforge.engine.stepper.Stepper`): gradients of a
window are normalised by its target mass, scaled under fp16 and clipped as in training.
The model, optimizer and random-number states are restored afterwards: the test leaves no trace.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..infer.loop import prepare_images
from ..losses import DetectionLoss
from .gradients import GradientClipper
from .state import restore_rng_state, rng_state
from .stepper import Stepper

__all__ = ["LRFindResult", "lr_range_test", "suggest_lr", "plot_lr_find"]


@dataclass
class LRFindResult:
    """One point per completed step: ``lrs`` swept, raw ``losses`` (sum of the loss terms, as
    the trainer logs them) and their ``smoothed`` average; the ``suggestion`` (None if
    undecidable); ``stopped_early``: the loss diverged before ``iters`` steps."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    stopped_early: bool = False


def suggest_lr(lrs: list[float], smoothed: list[float]) -> float | None:
    """lr at the steepest descent of ``smoothed`` over log10(lr), ends trimmed (module doc)."""
    n = len(lrs)
    skip = max(1, n // 10)
    if n - 2 * skip < 3:
        return None
    slope = np.gradient(np.asarray(smoothed, dtype=np.float64), np.log10(lrs))
    inner = slope[skip : n - skip]
    return float(lrs[skip + int(np.argmin(inner))])


def _batches(loader: Iterable) -> Iterable:
    """Cycle over the loader: the sweep may be longer than an epoch."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("lr_range_test: the loader yields no batches")


def lr_range_test(
    model: nn.Module,
    loss_fn: DetectionLoss,
    loader: Iterable[dict],
    optimizer: torch.optim.Optimizer,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    iters: int = 100,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    smooth: float = 0.98,
    diverge: float = 4.0,
    clipper: Callable[[Iterable[nn.Parameter]], float] | None = None,
    accumulate: int = 1,
    target_key: str = "targets",
) -> LRFindResult:
    """Run the range test and return its curve and suggested lr (see the module docstring).

    model: on ``device`` (default: where its parameters are), returning raw maps (a detector)
    or logits (a classifier); loss_fn: its loss (``compute`` gives summed terms and target
    mass); loader: batches with ``img`` uint8 (B, 3, H, W) and the targets under ``target_key``
    (``targets`` (M, 6) for detection, ``cls`` (B,) or (B, C) for classification), cycled if
    shorter than ``iters``.
    optimizer: its groups keep their ratios: group lr = lr * initial_lr / max(initial_lr), so the
    swept lr (and the suggestion) is the lr of the group with the largest multiplier.
    clipper: the trainer's gradient clipper, to sweep under the same clipping as training.
    accumulate: batches whose gradients are summed into each step (``train.accumulate``); the
    loss of a step is their mean. Each step is the trainer's :class:`Stepper` step, so
    accumulation, AMP scaling and clipping act exactly as in training.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr-find: need 0 < start_lr < end_lr, got {start_lr:g}, {end_lr:g}")
    if iters < 2 or accumulate < 1 or not 0 <= smooth < 1 or diverge <= 1:
        raise ValueError(
            "lr-find: need iters >= 2, accumulate >= 1, 0 <= smooth < 1 and diverge > 1"
        )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    bases = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
    mults = [b / max(bases) for b in bases]
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_rng, was_training = rng_state(), model.training
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and amp_dtype == torch.float16
    )
    # the training step itself: exact accumulation, AMP scaling, clipping, non-finite skips
    stepper = Stepper(
        model, loss_fn, optimizer, scaler, clipper or GradientClipper("none"), None, device,
        amp_dtype, max_nonfinite=iters + 1,
    )  # fmt: skip
    result = LRFindResult()
    avg, best = 0.0, math.inf
    try:
        model.train()
        batches = _batches(loader)
        for i in range(iters):
            lr = start_lr * (end_lr / start_lr) ** (i / (iters - 1))
            for group, mult in zip(optimizer.param_groups, mults, strict=True):
                group["lr"] = lr * mult
            optimizer.zero_grad(set_to_none=True)
            value, mass, images = 0.0, 0.0, 0
            for j in range(accumulate):
                batch = next(batches)
                x = prepare_images(batch["img"], device)
                terms, batch_mass = stepper.forward_backward(
                    x, batch[target_key].to(device), sync=j == accumulate - 1
                )
                value += sum(terms.values()) / accumulate
                mass += batch_mass
                images += x.shape[0]
            if not math.isfinite(value):
                result.stopped_early = True
                break
            _, finite = stepper.step(mass, images, i)
            if not finite:
                result.stopped_early = True
                break
            avg = smooth * avg + (1.0 - smooth) * value
            smoothed = avg / (1.0 - smooth ** (i + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                result.stopped_early = i < iters - 1
                break
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        model.train(was_training)
        restore_rng_state(saved_rng)
    result.suggestion = suggest_lr(result.lrs, result.smoothed)
    return result


def plot_lr_find(result: LRFindResult, png: str | Path) -> Path:
    """Loss (raw, faint) and smoothed loss against the lr (log axis), suggestion marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", lw=1.6, label="smoothed")
    title = "lr range test"
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="tab:red", ls="--", lw=1, label="suggestion")
        title += f": suggested lr {result.suggestion:.3g} (steepest descent)"
    if result.stopped_early:
        title += ", stopped at divergence"
    ax.set_xscale("log")
    if result.smoothed:
        # raw losses spike at divergence; keep the smoothed curve, the one to read, in view
        low = min(result.losses + result.smoothed)
        ax.set_ylim(low - 0.05 * abs(low), 2.0 * max(result.smoothed) - low)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (sum of the terms)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    return png
