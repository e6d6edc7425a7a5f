"""Exponential moving average of model weights and BatchNorm statistics."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """``ema = d * ema + (1 - d) * model`` after every optimizer step.

    The decay ramps up as ``decay * (1 - exp(-updates / tau))`` so the early average is not
    dominated by random initial weights. Integer buffers (BN's batch counter) are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates=0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        src = model.state_dict()
        ema_f, src_f = [], []
        for name, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                ema_f.append(v)
                src_f.append(src[name].detach())
            else:
                v.copy_(src[name])
        torch._foreach_lerp_(ema_f, src_f, 1 - d)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
