"""Recipes: YAML presets shipped with detforge, applied as a settings layer (``recipe=NAME``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .fields import ConfigError, suggest, yaml_load

__all__ = ["available_recipes", "load_recipe", "recipe_description"]


def _folder():
    return resources.files("detforge") / "recipes"


def available_recipes() -> list[str]:
    return sorted(f.name[:-5] for f in _folder().iterdir() if f.name.endswith(".yaml"))


def _path(name: str):
    if name.endswith(".yaml") and Path(name).is_file():
        return Path(name)  # a user's own recipe file
    f = _folder() / f"{name}.yaml"
    if not f.is_file():
        raise ConfigError(
            f"recipe: unknown recipe '{name}'{suggest(name, available_recipes())}; "
            f"available: {', '.join(available_recipes())}"
        )
    return f


def load_recipe(name: str) -> dict:
    """The settings tree of a recipe (sections -> keys); validated by the config loader."""
    tree = yaml_load(_path(name).read_text()) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"recipe '{name}': expected a mapping of settings")
    return tree


def recipe_description(name: str) -> str:
    """The leading comment block of a recipe file."""
    lines = []
    for line in _path(name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)
