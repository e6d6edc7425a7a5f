"""Declarative, validated config fields on top of dataclasses.

Each setting is a dataclass field created with :func:`setting`, which records its help text and
constraints in the field metadata. Validation and coercion read that metadata, so the schema is
the single source of truth for types, ranges, the README reference and error messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["ConfigError", "setting", "coerce", "check_constraints", "suggest", "yaml_load"]


def _make_loader():
    import re

    import yaml

    class Yaml12Loader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 booleans: only true/false, so ``amp: off`` stays a string."""

    Yaml12Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    # YAML 1.1 needs a dot in floats; accept 1e-3 as a number too
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Yaml12Loader


_LOADER = None


def yaml_load(text: str):
    """Parse YAML for settings: safe, and with YAML 1.2 booleans (``off``/``no`` are strings)."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _make_loader()
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass


class ConfigError(ValueError):
    """A configuration key or value a user must fix; the message names the key."""


def setting(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with help text and numeric bounds (mutable defaults are copied)."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def suggest(name: str, options: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest option, or an empty string.

    Case is compared first on its own (``SGD`` -> ``sgd``), since difflib scores it as a miss.
    """
    options = list(options)
    same_case = [o for o in options if o.lower() == name.lower()]
    match = same_case or difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless.

    Values from the command line and environment arrive already parsed by YAML, so this only
    accepts ints for floats, single values for lists of that type, and comma-separated choices
    for a list of choices (``track=tensorboard,mlflow``).
    """
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        hint = suggest(str(value), [str(c) for c in choices])
        raise ConfigError(f"{key}: {value!r} is not one of {_type_name(tp)}{hint}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        words = {int: "an integer", float: "a number", str: "a string", type(None): "null"}
        expected = " or ".join(words.get(a, _type_name(a)) for a in args)
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, str) and get_origin(inner) is Literal:
            value = [v.strip() for v in value.split(",") if v.strip()]  # track=tensorboard,mlflow
        if not isinstance(value, list):
            value = [value]
        return [coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def check_constraints(key: str, value: Any, field: dataclasses.Field) -> None:
    """Numeric bounds from :func:`setting` metadata; lists are checked element-wise."""
    values = value if isinstance(value, list) else [value]
    meta = field.metadata
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if meta.get("ge") is not None and v < meta["ge"]:
            raise ConfigError(f"{key}: {v} is below the minimum {meta['ge']}")
        if meta.get("gt") is not None and v <= meta["gt"]:
            raise ConfigError(f"{key}: {v} must be greater than {meta['gt']}")
        if meta.get("le") is not None and v > meta["le"]:
            raise ConfigError(f"{key}: {v} is above the maximum {meta['le']}")
        if meta.get("lt") is not None and v >= meta["lt"]:
            raise ConfigError(f"{key}: {v} must be less than {meta['lt']}")


def describe_type(tp: Any) -> str:
    """Readable type for docs and messages."""
    return _type_name(tp)
