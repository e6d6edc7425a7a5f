"""Optimizer and parameter groups with explicit no-decay rules."""

from __future__ import annotations

from torch import nn, optim

__all__ = ["build_param_groups", "build_optimizer"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def build_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into three groups, each parameter exactly once.

    ``weights``: conv / linear weights, with weight decay.
    ``norm``: normalisation scales, no decay (decaying them shrinks activations, not capacity).
    ``bias``: every bias, no decay; the schedule warms these up from a higher learning rate.
    """
    groups = {"weights": [], "norm": [], "bias": []}
    seen: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if pname == "bias":
                groups["bias"].append(p)
            elif isinstance(module, _NORMS):
                groups["norm"].append(p)
            else:
                groups["weights"].append(p)
    return [
        {"params": params, "name": name, "weight_decay": weight_decay if name == "weights" else 0.0}
        for name, params in groups.items()
        if params
    ]


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    momentum: float = 0.937,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
) -> optim.Optimizer:
    """SGD or AdamW over :func:`build_param_groups`; ``initial_lr`` is kept per group."""
    groups = build_param_groups(model, weight_decay)
    if name == "sgd":
        opt = optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    elif name == "adamw":
        opt = optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    else:
        raise ValueError(f"optim.name: unknown optimizer {name!r}")
    for g in opt.param_groups:
        g["initial_lr"] = lr
    return opt
