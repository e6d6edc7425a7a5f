"""Optimizers by name over parameter groups with learning-rate and weight-decay multipliers.

Parameter groups
    ``groups`` is a list of ``{match, lr_mult, wd_mult, name}`` mappings. ``match`` is an fnmatch
    pattern tested (case-sensitively) against a parameter's full name, e.g.
    ``backbone.stages.0.1.cv1.conv.weight``, and against each of its module prefixes
    (``backbone``, ``backbone.stages``, ...): ``backbone.*`` and ``backbone`` both select the whole
    backbone. The first matching group wins; unmatched parameters form the ``default`` group. Every
    group is split by parameter kind into ``<label>/weights``, ``<label>/norm`` and
    ``<label>/bias`` torch param groups (``<label>`` is the group's ``name`` or its pattern). The
    kinds stay apart even when ``no_decay_norm_bias`` is off, because the schedule warms up groups
    whose name ends in ``bias`` from their own learning rate.

Freezing by pattern lives in :mod:`detforge.engine.freeze`; ``build_optimizer(freeze=...)``
applies it after the groups are built, so frozen parameters stay in the optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn, optim

from ..config.fields import ConfigError, suggest
from .freeze import apply_freeze, name_matches, parameter_name_hint

if TYPE_CHECKING:
    from ..config.schema import OptimSection, TrainSection

__all__ = [
    "OPTIMIZERS",
    "GroupSpec",
    "parse_group_specs",
    "build_param_groups",
    "build_optimizer",
    "optimizer_kwargs_from_config",
    "build_optimizer_from_config",
    "accumulation_steps",
    "describe_param_groups",
]

OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "radam", "rmsprop")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_GROUP_KEYS = ("match", "lr_mult", "wd_mult", "name")
_KINDS = ("weights", "norm", "bias")


@dataclass(frozen=True)
class GroupSpec:
    """One validated ``optim.groups`` entry."""

    match: str
    lr_mult: float = 1.0
    wd_mult: float = 1.0
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.match


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def parse_group_specs(
    groups: Sequence[Mapping[str, Any] | GroupSpec], key: str = "optim.groups"
) -> list[GroupSpec]:
    """Validate ``optim.groups`` entries; errors name the offending ``key[i].field``."""
    specs: list[GroupSpec] = []
    for i, g in enumerate(groups):
        where = f"{key}[{i}]"
        if isinstance(g, GroupSpec):
            specs.append(g)
            continue
        if not isinstance(g, Mapping):
            raise ConfigError(f"{where}: expected a mapping like {{match: 'neck.*'}}, got {g!r}")
        for k in g:
            if k not in _GROUP_KEYS:
                raise ConfigError(
                    f"{where}.{k}: unknown key{suggest(str(k), _GROUP_KEYS)}; "
                    f"expected {', '.join(_GROUP_KEYS)}"
                )
        match = g.get("match")
        if not isinstance(match, str) or not match:
            raise ConfigError(f"{where}.match: required, a name pattern such as 'backbone.*'")
        lr_mult = _number(g.get("lr_mult", 1.0), f"{where}.lr_mult")
        wd_mult = _number(g.get("wd_mult", 1.0), f"{where}.wd_mult")
        if lr_mult <= 0:
            raise ConfigError(f"{where}.lr_mult: {lr_mult} must be greater than 0 (freeze instead)")
        if wd_mult < 0:
            raise ConfigError(f"{where}.wd_mult: {wd_mult} is below the minimum 0")
        name = g.get("name")
        if name is not None and (not isinstance(name, str) or not name or name == "default"):
            raise ConfigError(f"{where}.name: expected a non-empty string other than 'default'")
        specs.append(GroupSpec(match, lr_mult, wd_mult, name))
    labels = [s.label for s in specs]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise ConfigError(f"{key}[{i}]: group name {label!r} is used twice; give it a name")
    return specs


def _parameters_by_kind(model: nn.Module) -> list[tuple[str, nn.Parameter, str]]:
    """(full name, parameter, kind) for every parameter once; kind from its owning module."""
    out, seen = [], set()
    for mod_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # shared (tied) parameters belong to their first owner
                continue
            seen.add(id(p))
            is_norm = isinstance(module, _NORMS)
            kind = "bias" if pname == "bias" else "norm" if is_norm else "weights"
            out.append((f"{mod_name}.{pname}" if mod_name else pname, p, kind))
    return out


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    *,
    groups: Sequence[Mapping[str, Any] | GroupSpec] = (),
    no_decay_norm_bias: bool = True,
) -> list[dict]:
    """Torch param-group dicts covering every trainable parameter exactly once.

    Each dict holds ``params``, ``name`` (``<label>/<kind>``), ``lr`` = ``initial_lr`` =
    ``lr * lr_mult``, ``lr_mult`` and ``weight_decay`` (``weight_decay * wd_mult``, or 0 for norm
    and bias kinds when ``no_decay_norm_bias``). Empty groups are left out.
    """
    specs = parse_group_specs(groups)
    buckets: dict[tuple[int, str], list[nn.Parameter]] = {}
    matched = [False] * len(specs)
    for full, p, kind in _parameters_by_kind(model):
        if not p.requires_grad:
            continue
        owner = -1
        for i, spec in enumerate(specs):
            if name_matches(spec.match, full):
                matched[i] = True
                owner = i if owner < 0 else owner
        buckets.setdefault((owner, kind), []).append(p)
    for i, spec in enumerate(specs):
        where = f"optim.groups[{i}].match"
        if not matched[i]:
            hint = parameter_name_hint(model)
            raise ConfigError(f"{where}: {spec.match!r} matches no trainable parameter; {hint}")
        if not any((i, kind) in buckets for kind in _KINDS):
            raise ConfigError(
                f"{where}: {spec.match!r} matches only parameters claimed by an earlier group "
                "(first match wins); put the more specific pattern first"
            )
    if not buckets:
        raise ValueError("the model has no trainable parameters")

    out = []
    for idx in [*range(len(specs)), -1]:
        spec = specs[idx] if idx >= 0 else GroupSpec("*", name="default")
        for kind in _KINDS:
            params = buckets.get((idx, kind))
            if not params:
                continue
            decays = kind == "weights" or not no_decay_norm_bias
            out.append(
                {
                    "params": params,
                    "name": f"{spec.label}/{kind}",
                    "lr": lr * spec.lr_mult,
                    "initial_lr": lr * spec.lr_mult,
                    "lr_mult": spec.lr_mult,
                    "weight_decay": weight_decay * spec.wd_mult if decays else 0.0,
                }
            )
    return out


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    momentum: float = 0.937,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    *,
    beta2: float = 0.999,
    eps: float = 1e-8,
    rmsprop_alpha: float = 0.99,
    no_decay_norm_bias: bool = True,
    groups: Sequence[Mapping[str, Any] | GroupSpec] = (),
    freeze: Sequence[str] = (),
) -> optim.Optimizer:
    """A torch optimizer by name over :func:`build_param_groups`, then ``freeze`` applied.

    ``momentum`` is SGD / RMSprop momentum or beta1 of adam, adamw, nadam and radam. Weight decay
    is per group: decoupled for adamw, added to the gradient (L2) by the others.
    """
    pg = build_param_groups(
        model, lr, weight_decay, groups=groups, no_decay_norm_bias=no_decay_norm_bias
    )
    betas = (momentum, beta2)
    factories = {
        "sgd": lambda: optim.SGD(pg, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0),
        "adam": lambda: optim.Adam(pg, lr=lr, betas=betas, eps=eps),
        "adamw": lambda: optim.AdamW(pg, lr=lr, betas=betas, eps=eps),
        "nadam": lambda: optim.NAdam(pg, lr=lr, betas=betas, eps=eps),
        "radam": lambda: optim.RAdam(pg, lr=lr, betas=betas, eps=eps),
        "rmsprop": lambda: optim.RMSprop(
            pg, lr=lr, alpha=rmsprop_alpha, eps=eps, momentum=momentum
        ),
    }
    if name not in factories:
        raise ConfigError(
            f"optim.name: unknown optimizer {name!r}{suggest(str(name), OPTIMIZERS)}; "
            f"expected one of {', '.join(OPTIMIZERS)}"
        )
    opt = factories[name]()
    if freeze:
        apply_freeze(model, freeze)
    return opt


def optimizer_kwargs_from_config(optim_section: OptimSection, weight_decay: float) -> dict:
    """Keyword arguments of :func:`build_optimizer` (after ``model``) from ``cfg.optim``.

    ``weight_decay`` is passed separately because the trainer scales ``optim.weight_decay`` by the
    effective batch (``optim.wd_batch_ref``).
    """
    o = optim_section
    return {
        "name": o.name,
        "lr": o.lr0,
        "momentum": o.momentum,
        "nesterov": o.nesterov,
        "weight_decay": weight_decay,
        "beta2": o.beta2,
        "eps": o.eps,
        "rmsprop_alpha": o.rmsprop_alpha,
        "no_decay_norm_bias": o.no_decay_norm_bias,
        "groups": list(o.groups),
        "freeze": list(o.freeze),
    }


def build_optimizer_from_config(
    optim_section: OptimSection, model: nn.Module, effective_batch: int
) -> tuple[optim.Optimizer, float]:
    """The ``optim`` section -> the optimizer and the weight decay it uses: ``weight_decay``
    scaled by ``effective_batch / wd_batch_ref`` (images per optimizer step, all processes)."""
    wd = optim_section.weight_decay
    if optim_section.wd_batch_ref:
        wd *= effective_batch / optim_section.wd_batch_ref
    return build_optimizer(model, **optimizer_kwargs_from_config(optim_section, wd)), wd


def accumulation_steps(train_section: TrainSection, world_size: int = 1) -> int:
    """Batches per optimizer step: ``train.accumulate``, or from ``train.nominal_batch``."""
    if train_section.nominal_batch:
        per_step = train_section.batch * world_size
        return max(1, round(train_section.nominal_batch / per_step))
    return train_section.accumulate


def describe_param_groups(optimizer: optim.Optimizer) -> str:
    """A table of the param groups: name, tensors, parameters (numel), frozen numel, lr, decay."""
    rows = [("group", "tensors", "params", "frozen", "lr", "weight_decay")]
    total = frozen_total = 0
    for g in optimizer.param_groups:
        n = sum(p.numel() for p in g["params"])
        frozen = sum(p.numel() for p in g["params"] if not p.requires_grad)
        total, frozen_total = total + n, frozen_total + frozen
        lr = g.get("initial_lr", g["lr"])
        rows.append(
            (
                g.get("name", "?"),
                str(len(g["params"])),
                f"{n:,}",
                f"{frozen:,}",
                f"{lr:.4g}",
                f"{g.get('weight_decay', 0.0):.4g}",
            )
        )
    rows.append(("total", "", f"{total:,}", f"{frozen_total:,}", "", ""))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [
        "  ".join(
            r[0].ljust(widths[0]) if c == 0 else r[c].rjust(widths[c]) for c in range(6)
        ).rstrip()
        for r in rows
    ]
    return "\n".join(lines)
