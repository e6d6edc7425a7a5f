"""The Optuna pieces of a study: the import (an extra), the samplers and the pruners."""

from __future__ import annotations

import warnings
from typing import Any

from ..config import ConfigError

__all__ = ["SAMPLERS", "PRUNERS", "import_optuna", "make_sampler", "make_pruner"]

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("hyperband", "median", "sha", "none")


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("detforge tune needs Optuna: pip install 'detforge[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the heartbeat of an asked trial is recorded by detforge.tune.storage.heartbeat
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def make_sampler(optuna: Any, name: str, seed: int) -> Any:
    """The sampler ``name`` (one of SAMPLERS) seeded with ``seed``."""
    s = optuna.samplers
    if name in ("grid", "random"):  # a grid's points are queued: see Tuner.open
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError(
                "tune: sampler cmaes needs the 'cmaes' package: pip install 'detforge[tune]'"
            ) from None
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # multivariate TPE handles conditional keys (group); constant liar keeps parallel
    # workers from sampling next to each other's running trials
    return s.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def make_pruner(optuna: Any, name: str, max_resource: int) -> Any:
    """The pruner ``name`` (one of PRUNERS); ``max_resource``: reports of a full trial."""
    p = optuna.pruners
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=1, max_resource=max_resource)
    if name == "median":
        return p.MedianPruner()
    if name == "sha":
        return p.SuccessiveHalvingPruner(min_resource=1)
    return p.NopPruner()
