"""One optimizer step over a window of micro-batches: forward, backward, scale, clip, step, EMA.

Kept apart from the epoch loop so the step's contract is in one place: gradients of a window
are summed un-normalised and divided by the window's target mass before clipping (exact
accumulation); a non-finite step is skipped, its BatchNorm statistics are rolled back, and
``max_nonfinite`` of them in a row stop training. Under fp16 the GradScaler skips such a step
itself; it counts as skipped all the same (no EMA update, statistics rolled back). Under DDP only
a window's last micro-batch all-reduces its gradients (``no_sync`` before), which sums the same
gradients as reducing every micro-batch.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from ..infer.device import autocast
from .distributed import DistInfo, all_reduce_sum
from .ema import ModelEMA
from .gradients import GradientClipper

__all__ = ["Stepper"]

log = logging.getLogger("detforge")


class Stepper:
    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        clipper: GradientClipper,
        ema: ModelEMA | None,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        max_nonfinite: int,
        dist: DistInfo | None = None,
    ):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.dist = dist or DistInfo()
        # under torchrun the forward pass goes through DDP, which averages gradients over
        # processes during backward; everything else uses the plain module
        self.forward_model = (
            nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
            if self.dist.enabled
            else model
        )
        self.scaler, self.clipper, self.ema = scaler, clipper, ema
        self.device, self.amp_dtype, self.max_nonfinite = device, amp_dtype, max_nonfinite
        self.skipped_steps = self.nonfinite_run = 0
        self._buffer_backup = None
        self._rng_backup = None

    def forward_backward(
        self, x: Tensor, targets: Tensor, sync: bool = True
    ) -> tuple[dict[str, float], float]:
        """x: (B, 3, H, W) float in [0, 1]; targets: (M, 6) (detection), (B,) / (B, C)
        (classification), or what a model that takes them in its forward pass wants.
        Back-propagates the un-normalised loss sums; returns this batch's normalised terms
        (for logging) and its target mass.
        sync: False for all but the last micro-batch of a window (DDP then defers the
        all-reduce of gradients to that last one)."""
        defer = self.dist.enabled and not sync
        # a model that computes its own loss terms (torchvision's detectors) needs the targets
        own_loss = getattr(self.loss_fn, "targets_in_forward", False)
        with self.forward_model.no_sync() if defer else nullcontext():
            with autocast(self.device, self.amp_dtype):
                outputs = self.forward_model(x, targets) if own_loss else self.forward_model(x)
            sums, mass = self.loss_fn.compute(_as_float(outputs), targets)
            self.scaler.scale(sum(sums.values())).backward()
        norm = max(float(mass), 1.0)
        return {k: float(v.detach()) / norm for k, v in sums.items()}, float(mass)

    def step(self, mass: float, images: int, step_index: int) -> tuple[float, bool]:
        """Finish a window: gradients x images / mass (so batch 8 with accumulate 2 updates
        exactly like batch 16, BatchNorm aside), clip, step, EMA. Returns the gradient norm and
        whether the step was finite."""
        self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        # DDP averaged the gradient sums over processes: normalise by the mass of all of them
        mass, images = all_reduce_sum([mass, float(images)], self.device, self.dist)
        if grads:
            torch._foreach_mul_(grads, self.dist.world_size * images / max(mass, 1.0))
        norm = self.clipper(self.model.parameters())
        finite = math.isfinite(norm)
        if self.scaler.is_enabled():
            # the scaler skips a step whose gradients hold inf/nan itself and lowers its scale
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            finite = finite and self.scaler.get_scale() >= scale
        elif finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if finite:
            self.nonfinite_run = 0
            if self.ema is not None:
                self.ema.update(self.model)
            self._buffer_backup = None
            return norm, finite
        self.restore_buffers()  # a non-finite forward may have poisoned BN statistics
        self.skipped_steps += 1
        self.nonfinite_run += 1
        log.warning("non-finite loss or gradient at step %d: step skipped", step_index)
        if self.nonfinite_run >= self.max_nonfinite:
            raise FloatingPointError(
                f"{self.nonfinite_run} consecutive non-finite steps (train.max_nonfinite="
                f"{self.max_nonfinite}): lower optim.lr0, or check the data"
            )
        return norm, False

    def save_buffers(self) -> None:
        """Copy BN running statistics before a window's forward passes (they change in them),
        and torch's RNG state (dropout draws from it in the forward passes)."""
        bufs = list(self.model.buffers())
        self._buffer_backup = (bufs, [b.clone() for b in bufs])
        cuda = self.device.type == "cuda"
        self._rng_backup = (
            torch.get_rng_state(),
            torch.cuda.get_rng_state(self.device) if cuda else None,
        )

    def rollback_window(self) -> None:
        """An unfinished window (an exception in it): BN statistics and torch's RNG back to its
        start, so the checkpoint then saved resumes with the same dropout draws as an
        uninterrupted run."""
        if self._buffer_backup is not None and self._rng_backup is not None:
            cpu, cuda = self._rng_backup
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, self.device)
        self.restore_buffers()

    def restore_buffers(self) -> None:
        """Roll BN statistics back to the start of the unfinished window, if any."""
        if self._buffer_backup is not None:
            bufs, saved = self._buffer_backup
            with torch.no_grad():
                torch._foreach_copy_(bufs, saved)
            self._buffer_backup = None


def _as_float(outputs):
    """fp32 outputs: detectors return per-level maps, classifiers one (B, C) logits tensor,
    torchvision's detectors a dict of loss terms."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return {k: v.float() for k, v in outputs.items()}
    return [o.float() for o in outputs]
