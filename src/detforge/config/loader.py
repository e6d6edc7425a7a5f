"""Build a validated :class:`RunConfig` from layers: defaults, presets, YAML, environment, CLI.

Precedence, lowest first: schema defaults < demo preset (only when no data.yaml is given) <
config YAML (``cfg=``) < ``DETFORGE_*`` environment variables < ``key=value`` arguments.
Every layer is checked key by key, so a misspelt key fails with the layer that holds it and the
nearest valid key.

Longer than the ~300-line guide because the layers share one key-by-key merge and error
path (aliases, env names, notes); splitting it would spread one precedence rule over files.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .families import check_family_settings
from .fields import ConfigError, check_constraints, coerce, suggest, yaml_load
from .metrics import check_fitness_weights, check_monitor
from .schema import ALIASES, DEMO_PRESET, TTA_VIEWS, OptimSection, RunConfig
from .short_run import fit_short_run
from .stages import plan_stages
from .tasks import apply_task_defaults, check_task_settings

__all__ = [
    "load_config",
    "parse_overrides",
    "config_to_dict",
    "config_from_dict",
    "dump_config",
    "all_keys",
    "ENV_PREFIX",
    "ENV_RESERVED",
]

ENV_PREFIX = "DETFORGE_"
# Environment variables of detforge that are not run settings.
ENV_RESERVED = {"DETFORGE_CACHE", "DETFORGE_SHARED", "DETFORGE_CONFIG", "DETFORGE_TUNE_WORKER"}


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(RunConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunConfig)}


def all_keys() -> dict[str, tuple[dataclasses.Field, Any]]:
    """``"section.key" -> (field, type)`` for every setting."""
    out = {}
    for sec_name, sec_type in _sections().items():
        hints = typing.get_type_hints(sec_type)
        for f in dataclasses.fields(sec_type):
            out[f"{sec_name}.{f.name}"] = (f, hints[f.name])
    return out


# Settings that changed meaning: key -> what to set instead (files and checkpoints written before
# the change are converted by _migrate).
RENAMED = {
    "schedule.warmup_bias_lr": "schedule.warmup_bias_factor, relative to the group's lr "
    "(the old absolute 0.1 at optim.lr0 0.01 is 10)",
}


def _migrate(flat: dict[str, Any], source: str) -> dict[str, Any]:
    """Convert renamed settings of a saved config or config file (a run made before the rename)."""
    if "schedule.warmup_bias_lr" in flat:
        absolute = flat.pop("schedule.warmup_bias_lr")
        lr0 = flat.get("optim.lr0", OptimSection.lr0)
        if isinstance(absolute, int | float) and isinstance(lr0, int | float) and lr0 > 0:
            flat["schedule.warmup_bias_factor"] = absolute / lr0
        elif absolute is None:
            flat["schedule.warmup_bias_factor"] = None
        else:
            raise ConfigError(f"{source}: schedule.warmup_bias_lr: expected a number or null")
    return flat


def _resolve_key(key: str, aliases: Mapping[str, str], source: str) -> str:
    key = key.strip()
    if key in aliases:
        return aliases[key]
    keys = all_keys()
    if key in keys:
        return key
    if key in RENAMED:
        raise ConfigError(f"{source}: '{key}' was replaced by {RENAMED[key]}")
    sections = _sections()
    if key in sections:
        raise ConfigError(f"{source}: '{key}' is a section; set one of its keys, e.g. '{key}.…'")
    candidates = list(keys) + list(aliases)
    # a bare leaf name (``lr0``) is a common slip: point at its full name
    leaf_matches = [k for k in keys if k.split(".")[-1] == key]
    if len(leaf_matches) == 1:
        hint = f" (did you mean '{leaf_matches[0]}'?)"
    else:
        hint = suggest(key, candidates)
    raise ConfigError(f"{source}: unknown key '{key}'{hint}")


def _flatten(tree: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Nested ``{section: {key: value}}``, dotted keys or aliases -> ``{"section.key": value}``
    (aliases are resolved later, by :func:`_resolve_key`).

    ``data`` and ``model`` are both a section and an alias: a mapping is the section, anything
    else the alias (``data="pcb/data.yaml"`` sets ``data.path``).
    """
    flat: dict[str, Any] = {}
    sections = _sections()
    for k, v in tree.items():
        if not isinstance(k, str):
            raise ConfigError(f"{source}: keys must be strings, got {k!r}")
        if k in sections and not isinstance(v, Mapping) and k in ALIASES:
            flat[k] = v
        elif k in sections:
            if not isinstance(v, Mapping):
                raise ConfigError(f"{source}: section '{k}' must be a mapping, got {v!r}")
            for kk, vv in v.items():
                flat[f"{k}.{kk}"] = vv
        else:
            flat[k] = v
    return flat


def parse_value(text: str) -> Any:
    """Parse a CLI or environment value with YAML rules (``1e-3``, ``true``, ``[1, 2]``)."""
    try:
        return yaml_load(text) if text != "" else None
    except yaml.YAMLError:
        return text


def parse_overrides(args: Iterable[str]) -> list[tuple[str, Any]]:
    """``["optim.lr0=0.02", "epochs=3"]`` -> ``[("optim.lr0", 0.02), ("epochs", 3)]``."""
    out = []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"argument '{arg}': expected key=value")
        key, text = arg.split("=", 1)
        if not key:
            raise ConfigError(f"argument '{arg}': empty key")
        out.append((key, parse_value(text)))
    return out


def _env_layer(env: Mapping[str, str], aliases: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """``DETFORGE_OPTIM__LR0=0.02`` / ``DETFORGE_EPOCHS=3`` -> overrides."""
    out = []
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        raw = name[len(ENV_PREFIX) :].lower()
        key = raw.replace("__", ".")
        out.append((key, parse_value(text), f"environment variable {name}"))
    return out


def _apply(
    values: dict[str, Any],
    items: Iterable[tuple[str, Any, str]],
    aliases: Mapping[str, str],
) -> set[str]:
    """Check and set each item; returns the full keys set."""
    keys = all_keys()
    done = set()
    for key, value, source in items:
        full = _resolve_key(key, aliases, source)
        f, tp = keys[full]
        try:
            value = coerce(full, value, tp)
            check_constraints(full, value, f)
        except ConfigError as e:
            # name where the value came from (an environment variable, a file) unless the
            # source already is the key=value the user typed
            if source.startswith("argument") or not source:
                raise
            raise ConfigError(f"{source}: {e}") from None
        values[full] = value
        done.add(full)
    return done


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Build and cross-check a RunConfig from ``{"section.key": value}``."""
    cfg = RunConfig()
    for full, value in values.items():
        sec, key = full.split(".", 1)
        setattr(getattr(cfg, sec), key, value)
    apply_task_defaults(cfg)
    _cross_check(cfg)
    return cfg


def _cross_check(cfg: RunConfig) -> None:
    """Rules that involve more than one field or value sets a type cannot express."""
    if cfg.train.imgsz % 32:
        raise ConfigError(
            f"train.imgsz: {cfg.train.imgsz} is not a multiple of 32 "
            f"(nearest: {max(32, round(cfg.train.imgsz / 32) * 32)})"
        )

    task = cfg.train.task
    check_fitness_weights(cfg.train.fitness, key="train.fitness", task=task)
    check_monitor(cfg.early_stop.monitor, "early_stop.monitor", task)
    check_monitor(cfg.schedule.monitor, "schedule.monitor", task)
    cw = cfg.loss.cls_weights
    if isinstance(cw, str) and cw != "auto":
        raise ConfigError(f"loss.cls_weights: {cw!r} is not 'auto', a list of numbers, or null")
    if isinstance(cw, list) and any(w < 0 for w in cw):
        raise ConfigError("loss.cls_weights: weights must be >= 0")
    if cfg.train.nominal_batch is not None and cfg.train.accumulate != 1:
        raise ConfigError(
            "train.nominal_batch and train.accumulate both set: choose one "
            f"(accumulate={cfg.train.accumulate}, nominal_batch={cfg.train.nominal_batch})"
        )
    if cfg.augment.multi_scale and (
        len(cfg.augment.multi_scale) != 2
        or not 0 < cfg.augment.multi_scale[0] <= cfg.augment.multi_scale[1]
    ):
        raise ConfigError(
            f"augment.multi_scale: expected [min, max] with 0 < min <= max, got "
            f"{cfg.augment.multi_scale}"
        )
    batch = cfg.train.batch
    if batch == "auto" and cfg.train.stages:
        raise ConfigError(
            "train.batch: auto is not supported with train.stages; give a number, or a batch "
            "in every stage"
        )
    t = cfg.train
    plan_stages(t.stages, t.epochs, t.imgsz, 1 if batch == "auto" else batch)
    bad = [t for t in cfg.tta.transforms if t not in TTA_VIEWS]
    if bad:
        raise ConfigError(
            f"tta.transforms: unknown view '{bad[0]}'{suggest(bad[0], TTA_VIEWS)}; choose from "
            + ", ".join(TTA_VIEWS)
        )
    if cfg.optim.unfreeze_at and not cfg.optim.freeze:
        raise ConfigError("optim.unfreeze_at is set but optim.freeze lists nothing to freeze")
    check_task_settings(cfg)
    if task == "detect":
        check_family_settings(cfg)
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"train.device: {dev!r} is not one of auto, cpu, cuda, cuda:N")


def load_config(
    overrides: Iterable[str] | Mapping[str, Any] = (),
    cfg_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    extra_aliases: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> RunConfig:
    """Resolve a run configuration.

    overrides: ``key=value`` strings or a mapping (nested sections or dotted keys).
    cfg_file: a YAML file of settings (e.g. a previous run's ``config.yaml``).
    env: environment to read ``DETFORGE_*`` from (default ``os.environ``).
    extra_aliases: command-specific short names (``conf`` means ``predict.conf`` in predict).
    base: values below everything else except defaults (a checkpoint's saved config).
    notes: where to put the ``(level, message)`` lines about defaults fitted to a short run
    (:mod:`~detforge.config.short_run`) instead of logging them.
    """
    aliases = {**ALIASES, **(extra_aliases or {})}
    env = os.environ if env is None else env
    layers: list[list[tuple[str, Any, str]]] = []
    overrides = _pop_recipe(overrides, layers, aliases)
    if base:
        flat = _migrate(_flatten(base, "saved config"), "saved config")
        layers.append([(k, v, "saved config") for k, v in flat.items()])
    if recipe_from_file := _recipe_in_file(cfg_file):
        layers.insert(0, _recipe_layer(recipe_from_file))
    if cfg_file is not None:
        path = Path(cfg_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            tree = yaml_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path}: invalid YAML: {e}") from None
        if not isinstance(tree, Mapping):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        tree = {k: v for k, v in tree.items() if k != "recipe"}
        src = f"config file {path}"
        flat = _migrate(_flatten(tree, src), src)
        layers.append([(k, v, f"{src}: key '{k}'") for k, v in flat.items()])
    layers.append(_env_layer(env, aliases))
    if isinstance(overrides, Mapping):
        flat = _flatten(overrides, "overrides")
        layers.append([(k, v, f"argument '{k}'") for k, v in flat.items()])
    else:
        layers.append([(k, v, f"argument '{k}={v}'") for k, v in parse_overrides(overrides)])

    values: dict[str, Any] = {}
    user_keys: set[str] = set()
    saved_keys: set[str] = set()
    for layer in layers:
        done = _apply(values, layer, aliases)
        saved = bool(layer) and layer[0][2] == "saved config"
        (saved_keys if saved else user_keys).update(done)
    if values.get("data.path") is None:
        preset: dict[str, Any] = {}
        _apply(preset, [(k, v, "demo preset") for k, v in _flatten(DEMO_PRESET, "").items()], {})
        values = {**preset, **values}
    cfg = config_from_dict(values)
    flat = {f"{s}.{k}": v for s, sec in config_to_dict(cfg).items() for k, v in sec.items()}
    fit_short_run(flat, user_keys, saved_keys, notes)
    for key in ("schedule.warmup_epochs", "augment.close_mosaic"):
        sec, name = key.split(".")
        setattr(getattr(cfg, sec), name, flat[key])
    return cfg


def _recipe_layer(name: str) -> list[tuple[str, Any, str]]:
    from .recipes import load_recipe

    src = f"recipe '{name}'"
    return [(k, v, f"{src}: key '{k}'") for k, v in _flatten(load_recipe(name), src).items()]


def _pop_recipe(overrides, layers: list, aliases) -> Iterable[str] | Mapping[str, Any]:
    """Take ``recipe=NAME`` out of the overrides and make it the lowest user layer."""
    if isinstance(overrides, Mapping):
        overrides = dict(overrides)
        name = overrides.pop("recipe", None)
    else:
        kept, name = [], None
        for arg in overrides:
            if arg.split("=", 1)[0].strip() == "recipe":
                name = arg.split("=", 1)[1]
            else:
                kept.append(arg)
        overrides = kept
    if name:
        layers.append(_recipe_layer(str(name)))
    return overrides


def _recipe_in_file(cfg_file) -> str | None:
    """A config file may name a recipe (``recipe: finetune``) to build on."""
    if cfg_file is None or not Path(cfg_file).is_file():
        return None
    try:
        tree = yaml_load(Path(cfg_file).read_text()) or {}
    except Exception:
        return None
    return tree.get("recipe") if isinstance(tree, Mapping) else None


def config_to_dict(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Nested plain dict of every setting (what ``config.yaml`` holds)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    """YAML text of the resolved configuration, sections in schema order."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
