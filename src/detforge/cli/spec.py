"""One typed argument spec for every command: a small table per command, used to parse the
command's own ``key=value`` arguments and to print ``detforge <command> -h``.

A command either also takes settings (any other ``key=value`` goes to the config loader) or
takes only its own arguments (anything else is an error naming the argument).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.fields import ConfigError, suggest
from ..config.loader import parse_value

__all__ = ["REQUIRED", "Arg", "Command", "Parsed", "parse", "command_help"]

REQUIRED: Any = ...  # the default of an argument that must be given


@dataclass(frozen=True)
class Arg:
    """``name=value``: ``type`` is str, int, float, bool or list (comma-separated); ``check``
    with its ``rule`` (e.g. "must be a positive number") bounds the value."""

    name: str
    type: type
    default: Any
    help: str
    example: str = ""
    check: Callable[[Any], bool] | None = None
    rule: str = ""


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    usage: str
    args: tuple[Arg, ...] = ()
    settings: bool = True
    json: bool = False  # --json prints the metrics as json


@dataclass
class Parsed:
    special: dict[str, Any]  # every Arg of the command, given or default
    settings: list[str]  # the other key=value arguments, for the config loader
    as_json: bool


def _convert(command: str, arg: Arg, text: str) -> Any:
    value = text if arg.type is str else parse_value(text)
    if arg.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if arg.type is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, arg.type) or (arg.type is not bool and isinstance(value, bool)):
        raise ConfigError(
            f"detforge {command}: {arg.name}: expected {arg.type.__name__}, got {text!r}"
        )
    if arg.check is not None and not arg.check(value):
        raise ConfigError(f"{command}: {arg.name} {arg.rule}, got {value!r}")
    return value


def parse(command: Command, argv: Sequence[str]) -> Parsed:
    """Split ``argv`` into the command's typed arguments and config settings."""
    spec = {a.name: a for a in command.args}
    name = command.name
    as_json = "--json" in argv
    if as_json and not command.json:
        raise ConfigError(f"detforge {name}: --json is not an option of this command")
    special: dict[str, Any] = {}
    settings: list[str] = []
    for a in argv:
        if a == "--json":
            continue
        key = a.split("=", 1)[0]
        if "=" in a and key in spec:
            special[key] = _convert(name, spec[key], a.split("=", 1)[1])
        elif command.settings:
            settings.append(a)
        elif "=" not in a:
            raise ConfigError(f"detforge {name}: argument '{a}': expected key=value")
        else:
            raise ConfigError(f"detforge {name}: unknown argument '{key}'{suggest(key, spec)}")
    for arg in command.args:
        if arg.name in special and special[arg.name] != "":
            continue
        if arg.default is REQUIRED:
            hint = f" (e.g. {arg.example})" if arg.example else ""
            raise ConfigError(f"detforge {name}: missing {arg.name}={hint}")
        special[arg.name] = arg.default
    return Parsed(special, settings, as_json)


def command_help(command: Command) -> str:
    """``detforge <command> -h``: usage, what it does, and its arguments with type and default."""
    lines = [f"usage: {command.usage}", "", command.summary]
    if command.args:
        lines += ["", "arguments:"]
        for a in command.args:
            default = "required" if a.default is REQUIRED else f"default {a.default!r}"
            lines.append(f"  {a.name + '=':<16} {a.type.__name__:<6} {default:<24} {a.help}")
    if command.json:
        lines.append(f"  {'--json':<16} {'':<6} {'':<24} print the metrics as json")
    if command.settings:
        lines += [
            "",
            "Any other key=value is a setting (detforge config lists them; cfg=FILE.yaml,",
            "recipe=NAME and DETFORGE_<SECTION>__<KEY> environment variables also apply).",
        ]
    return "\n".join(lines)
