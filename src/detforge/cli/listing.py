"""``detforge models``, ``detforge recipes`` and ``detforge config``: what is built in."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Command, parse

MODELS = Command("models", "List the built-in models.", "detforge models", settings=False)
RECIPES = Command(
    "recipes",
    "List the training recipes (presets: detforge train recipe=NAME ...).",
    "detforge recipes",
    settings=False,
)
SPACES = Command(
    "spaces",
    "List the shipped search spaces (detforge tune space=NAME ...).",
    "detforge spaces",
    settings=False,
)
CONFIG = Command(
    "config",
    "List every setting with its default and the module that acts on it.",
    "detforge config",
    settings=False,
)


def run_models(args: Sequence[str]) -> int:
    from ..models import available_models

    parse(MODELS, args)
    print("\n".join(available_models()))
    return 0


def run_recipes(args: Sequence[str]) -> int:
    from ..config.recipes import available_recipes, recipe_description

    parse(RECIPES, args)
    for name in available_recipes():
        print(f"{name:<15} {recipe_description(name)}")
    return 0


def run_config(args: Sequence[str]) -> int:
    from ..config.docs import settings_table

    parse(CONFIG, args)
    print(settings_table())
    return 0


def run_spaces(args: Sequence[str]) -> int:
    from ..tune.space import available_spaces, space_description

    parse(SPACES, args)
    for name in available_spaces():
        print(f"{name:<22} {space_description(name)}")
    return 0
