"""Typed run configuration: schema, layered loading and validation."""

from .fields import ConfigError
from .loader import all_keys, config_to_dict, dump_config, load_config, parse_overrides
from .schema import ALIASES, RunConfig

__all__ = [
    "ALIASES",
    "ConfigError",
    "RunConfig",
    "all_keys",
    "config_to_dict",
    "dump_config",
    "load_config",
    "parse_overrides",
]
