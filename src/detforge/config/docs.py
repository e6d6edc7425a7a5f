"""The settings reference (for ``detforge config`` and the README), generated from the schema."""

from __future__ import annotations

import yaml

from .fields import describe_type
from .loader import all_keys
from .schema import ALIASES, DEMO_PRESET, consumer_of

__all__ = ["settings_table"]


def _default(f) -> str:
    import dataclasses

    if f.default is not dataclasses.MISSING:
        value = f.default
    else:
        value = f.default_factory()
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1000)
        .strip()
        .removesuffix("...")
        .strip()
    )


def settings_table() -> str:
    """A markdown table: key, type, default, meaning (with bounds and aliases), and the module
    that acts on the key."""
    reverse = {v: k for k, v in ALIASES.items()}
    rows = ["| key | type | default | meaning | acted on in |", "|---|---|---|---|---|"]
    for key, (f, tp) in all_keys().items():
        meta = f.metadata
        bounds = [
            f"{sym} {meta[k]}"
            for k, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if meta.get(k) is not None
        ]
        note = meta["help"]
        if bounds:
            note += f" ({', '.join(bounds)})"
        if key in reverse:
            note += f" Alias: `{reverse[key]}=`."
        ktype = describe_type(tp).replace("|", "\\|")
        where = consumer_of(key).removeprefix("detforge.")
        rows.append(f"| `{key}` | {ktype} | `{_default(f)}` | {note} | `{where}` |")
    preset = ", ".join(f"{s}.{k}={v}" for s, kv in DEMO_PRESET.items() for k, v in kv.items())
    rows.append("")
    rows.append(f"Without `data.path` the demo preset applies below your settings: {preset}.")
    return "\n".join(rows)


BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def update_readme(path: str) -> bool:
    """Replace the settings block of a README in place; True if it changed."""
    from pathlib import Path

    p = Path(path)
    text = p.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"
    if new != text:
        p.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m detforge.config.docs README.md
    import sys

    print("updated" if update_readme(sys.argv[1]) else "up to date")
