"""Search spaces: a YAML mapping of setting keys to what a trial may try for them.

::

    optim.lr0: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    train.batch: {type: int, low: 8, high: 32, step: 8}
    optim.name: {type: categorical, choices: [sgd, adamw]}
    optim.momentum: {type: float, low: 0.8, high: 0.98, when: {optim.name: sgd}}
    schedule.warmup_epochs: [0, 1, 3]          # a plain list: a grid axis (categorical elsewhere)

Keys are the settings of ``detforge config`` (or their aliases). Every bound and choice is checked
against the setting's type and range when the space is loaded, and ``when`` names an earlier
parameter of the space and the value(s) it must have for the key to be sampled, so a bad space
fails with the key before any trial starts. Shipped spaces (``tune/spaces/*.yaml``) are found by
name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config.fields import ConfigError, check_constraints, coerce, suggest, yaml_load
from ..config.loader import all_keys
from ..config.schema import ALIASES

__all__ = ["Param", "Space", "load_space", "parse_space", "available_spaces", "space_description"]

KINDS = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


@dataclass(frozen=True)
class Param:
    """One key of a space. ``kind``: float, int, categorical or grid (a plain list)."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the conditions hold for the values sampled so far."""
        return all(k in values and values[k] in allowed for k, allowed in self.when.items())


@dataclass(frozen=True)
class Space:
    name: str
    source: str
    params: tuple[Param, ...]

    def suggest(self, trial) -> dict[str, Any]:
        """Sample every active parameter from an Optuna trial (``Trial`` or ``FixedTrial``), in
        file order, so a condition sees the value of the key it names."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "float":
                values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
            elif p.kind == "int":
                values[p.key] = trial.suggest_int(p.key, p.low, p.high, log=p.log, step=p.step or 1)
            else:
                values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        return values

    @property
    def is_grid(self) -> bool:
        """Every parameter a plain list and none conditional: a grid."""
        return all(p.kind == "grid" and not p.when for p in self.params)

    def grid(self) -> dict[str, list]:
        """The grid sampler's search space; an error naming the first key that is no list."""
        for p in self.params:
            if p.kind not in ("grid", "categorical") or p.when:
                what = "a conditional key" if p.when else f"a {p.kind} range"
                raise ConfigError(
                    f"{self.source}: {p.key}: sampler grid needs plain lists of values, and "
                    f"this is {what}; use sampler=tpe, random or cmaes"
                )
        return {p.key: list(p.choices) for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(c) for c in self.grid().values())

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, the first key varying slowest."""
        grid = self.grid()
        return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]

    def describe(self) -> list[dict[str, Any]]:
        """Plain data of the space (kept in the study, to notice a changed space on resume)."""
        out = []
        for p in self.params:
            d: dict[str, Any] = {"key": p.key, "kind": p.kind}
            if p.kind in ("float", "int"):
                d.update(low=p.low, high=p.high, log=p.log, step=p.step)
            else:
                d["choices"] = list(p.choices)
            if p.when:
                d["when"] = {k: list(v) for k, v in p.when.items()}
            out.append(d)
        return out


def _folder():
    return resources.files("detforge") / "tune" / "spaces"


def available_spaces() -> list[str]:
    """Names of the shipped spaces (``detforge spaces``)."""
    return sorted(f.name[:-5] for f in _folder().iterdir() if f.name.endswith(".yaml"))


def _space_text(name: str) -> tuple[str, str, str]:
    """(text, name, source) of a space file path or a shipped space name."""
    path = Path(name)
    if path.is_file():
        return path.read_text(), path.stem, f"space file {path}"
    f = _folder() / f"{name}.yaml"
    if name and "/" not in name and f.is_file():
        return f.read_text(), name, f"space '{name}'"
    shipped = available_spaces()
    raise ConfigError(
        f"space: '{name}' is neither a file nor a shipped space{suggest(name, shipped)}; "
        f"shipped: {', '.join(shipped)}"
    )


def space_description(name: str) -> str:
    """The leading comment block of a shipped space."""
    lines = []
    for line in _space_text(name)[0].splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def load_space(name: str) -> Space:
    """A space from a YAML file or a shipped space's name, checked against the config schema."""
    text, stem, source = _space_text(name)
    try:
        tree = yaml_load(text)
    except Exception as e:
        raise ConfigError(f"{source}: invalid YAML: {e}") from None
    return parse_space(tree, stem, source)


def parse_space(tree: Any, name: str = "space", source: str = "space") -> Space:
    """A :class:`Space` from a parsed YAML mapping; ``ConfigError`` naming the key otherwise."""
    if not isinstance(tree, Mapping) or not tree:
        raise ConfigError(f"{source}: expected a mapping of setting keys to ranges or lists")
    params: list[Param] = []
    for key, spec in tree.items():
        full = _resolve(str(key), source)
        if any(p.key == full for p in params):
            raise ConfigError(f"{source}: {full} is given twice")
        params.append(_param(full, spec, params, f"{source}: {full}"))
    return Space(name, source, tuple(params))


def _resolve(key: str, source: str) -> str:
    keys = all_keys()
    if key in keys:
        return key
    if key in ALIASES:
        return ALIASES[key]
    leaf = [k for k in keys if k.split(".")[-1] == key]
    hint = f" (did you mean '{leaf[0]}'?)" if len(leaf) == 1 else suggest(key, keys)
    raise ConfigError(f"{source}: unknown key '{key}'{hint}")


def _check_value(key: str, value: Any, where: str) -> Any:
    """The value as the setting takes it (type and bounds of the schema)."""
    f, tp = all_keys()[key]
    try:
        value = coerce(key, value, tp)
        check_constraints(key, value, f)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return value


def _choices(key: str, values: Any, where: str) -> tuple:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: expected a non-empty list of values, got {values!r}")
    out = []
    for v in values:
        if v is not None and not isinstance(v, bool | int | float | str):
            raise ConfigError(
                f"{where}: choice {v!r}: choices must be numbers, strings, booleans or null"
            )
        out.append(_check_value(key, v, where))
    if len({repr(v) for v in out}) != len(out):
        raise ConfigError(f"{where}: a value is listed twice in {values!r}")
    return tuple(out)


def _param(key: str, spec: Any, before: list[Param], where: str) -> Param:
    if isinstance(spec, list):
        return Param(key, "grid", choices=_choices(key, spec, where))
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: expected a list of values or a mapping with 'type', got {spec!r}"
        )
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(
            f"{where}: type {kind!r} is not one of {', '.join(KINDS)}{suggest(str(kind), KINDS)}"
        )
    for k in spec:
        if k not in _FIELDS[kind]:
            raise ConfigError(
                f"{where}: '{k}' is not a field of a {kind} parameter"
                f"{suggest(str(k), _FIELDS[kind])}; fields: {', '.join(sorted(_FIELDS[kind]))}"
            )
    when = _conditions(spec.get("when"), before, where)
    if kind == "categorical":
        return Param(key, kind, choices=_choices(key, spec.get("choices"), where), when=when)
    missing = [b for b in ("low", "high") if b not in spec]
    if missing:
        raise ConfigError(f"{where}: a {kind} parameter needs low and high (missing {missing[0]})")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    number = int if kind == "int" else int | float
    for name, v in (("low", low), ("high", high), ("step", step)):
        if v is not None and (not isinstance(v, number) or isinstance(v, bool)):
            what = "an integer" if kind == "int" else "a number"
            raise ConfigError(f"{where}: {name}: expected {what}, got {v!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log: expected true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: empty range: low {low} must be below high {high}")
    if log and low <= 0:
        raise ConfigError(f"{where}: log scale needs low > 0, got {low}")
    if log and step is not None:
        raise ConfigError(f"{where}: step and log cannot be combined")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be positive, got {step}")
    low, high = (_check_value(key, v, where) for v in (low, high))
    if kind == "float":
        low, high = float(low), float(high)
    return Param(key, kind, low, high, log, step, when=when)


def _conditions(when: Any, before: list[Param], where: str) -> dict[str, tuple]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"{where}: when: expected a mapping {{key: value}}, got {when!r}")
    known = {p.key: p for p in before}
    out = {}
    for k, v in when.items():
        full = _resolve(str(k), f"{where}: when")
        if full not in known:
            raise ConfigError(
                f"{where}: when: {full} must be a parameter given earlier in the space"
            )
        allowed = _choices(full, v if isinstance(v, list) else [v], f"{where}: when: {full}")
        cond = known[full]
        if cond.kind in ("grid", "categorical"):
            never = [a for a in allowed if a not in cond.choices]
            if never:
                raise ConfigError(
                    f"{where}: when: {full} = {never[0]!r} is not among its choices "
                    f"{list(cond.choices)}, so the condition never holds"
                )
        out[full] = allowed
    return out
