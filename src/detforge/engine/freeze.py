"""Freezing parameters by name pattern, and unfreezing them at an epoch.

Patterns are fnmatch patterns tested (case-sensitively) against a parameter's full dotted name
and each of its module prefixes, so ``backbone``, ``backbone.*`` and ``backbone.stages.0`` all
select whole modules.

How a frozen part behaves during training
    ``apply_freeze`` sets ``requires_grad=False``. The parameters stay in the optimizer (see
    :func:`detforge.engine.optim.build_optimizer`): torch optimizers skip parameters whose
    ``.grad`` is None, which frozen parameters keep when gradients are zeroed with
    ``set_to_none=True``, so neither the update nor weight decay moves them and no optimizer state
    (momentum buffer, Adam moments and step count) is created for them. After :func:`unfreeze` their
    state therefore starts fresh, without rebuilding the optimizer.

    ``model.train()`` would still let frozen BatchNorm layers update their running statistics (they
    are buffers, not parameters). :func:`freeze_norm_stats`, called after every ``model.train()``,
    puts norm layers whose affine parameters are all frozen in eval mode: they keep their running
    statistics and normalise with them, i.e. a frozen part computes exactly what it computes at
    inference. Once unfrozen, the next ``model.train()`` / ``freeze_norm_stats`` pair trains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from torch import nn

from ..config.fields import ConfigError

__all__ = [
    "name_matches",
    "parameter_name_hint",
    "apply_freeze",
    "unfreeze",
    "freeze_norm_stats",
    "freeze_active",
]


def name_matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches the dotted ``name`` or one of its module prefixes."""
    parts = name.split(".")
    return any(fnmatchcase(".".join(parts[:n]), pattern) for n in range(len(parts), 0, -1))


def parameter_name_hint(model: nn.Module) -> str:
    """What parameter names look like, for errors about patterns that match nothing."""
    names = [n for n, _ in model.named_parameters()]
    tops = sorted({n.split(".")[0] for n in names})
    example = names[0] if names else ""
    return f"parameter names look like {example!r}; top-level modules: {', '.join(tops)}"


def _matching_parameters(
    model: nn.Module, patterns: Sequence[str], key: str
) -> list[tuple[str, nn.Parameter]]:
    """Parameters matching any pattern, in model order; a pattern matching none is an error."""
    if isinstance(patterns, str):  # a bare string would be iterated character by character
        patterns = [patterns]
    named = list(model.named_parameters())
    hits: set[str] = set()
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{key}[{i}]: expected a name pattern such as 'backbone.*'")
        found = [n for n, _ in named if name_matches(pattern, n)]
        if not found:
            hint = parameter_name_hint(model)
            raise ConfigError(f"{key}[{i}]: {pattern!r} matches no parameter; {hint}")
        hits.update(found)
    return [(n, p) for n, p in named if n in hits]


def apply_freeze(model: nn.Module, patterns: Sequence[str], key: str = "optim.freeze") -> list[str]:
    """Set ``requires_grad=False`` on parameters matching any pattern; returns their names."""
    hits = _matching_parameters(model, patterns, key)
    for _, p in hits:
        p.requires_grad_(False)
    return [n for n, _ in hits]


def unfreeze(model: nn.Module, patterns: Sequence[str], key: str = "optim.freeze") -> list[str]:
    """Undo :func:`apply_freeze` for the same patterns (idempotent); returns the names."""
    hits = _matching_parameters(model, patterns, key)
    for _, p in hits:
        p.requires_grad_(True)
    return [n for n, _ in hits]


def freeze_norm_stats(model: nn.Module) -> int:
    """Put every BatchNorm / InstanceNorm whose affine parameters are all frozen in eval mode.

    Call after each ``model.train()`` (which switches them back). Norm layers without affine
    parameters are left alone: nothing tells which part they belong to. Returns how many were set.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
                count += 1
    return count


def freeze_active(epoch: int, unfreeze_at: int | None) -> bool:
    """Whether frozen parameters stay frozen during the 0-based ``epoch``.

    ``unfreeze_at`` is 1-based (``optim.unfreeze_at``): with 3, epochs 1-2 are frozen and every
    parameter trains from epoch 3 (0-based index 2) on. None: frozen for the whole run.
    """
    return unfreeze_at is None or epoch + 1 < unfreeze_at
