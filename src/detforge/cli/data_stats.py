"""``detforge data-stats``: per-class boxes, sizes, aspect ratios, empty and duplicate images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .spec import Arg, Command, parse

__all__ = ["COMMAND", "run"]

COMMAND = Command(
    "data-stats",
    "Dataset statistics: per-class boxes, sizes, aspect ratios, empty and duplicate images; "
    "plots and stats.json in out.",
    "detforge data-stats [data=data.yaml] [out=runs/data_stats] [cache_dir=DIR]",
    (
        Arg("data", str, None, "data.yaml (default: the demo dataset)"),
        Arg("out", str, "runs/data_stats", "output folder"),
        Arg("cache_dir", str, None, "label cache folder"),
    ),
    settings=False,
)


def run(args: Sequence[str]) -> int:
    from ..data.demo import ensure_demo_dataset
    from ..data.stats import data_stats, format_stats, plot_stats
    from ..utils.atomic import write_json_atomic

    a = parse(COMMAND, args).special
    data = a["data"] or ensure_demo_dataset(Path(a["cache_dir"]) if a["cache_dir"] else None)
    stats = data_stats(data, cache_dir=a["cache_dir"])
    print(format_stats(stats))
    out = Path(a["out"])
    pngs = plot_stats(stats, out)
    write_json_atomic(out / "stats.json", stats, indent=1)
    print(f"\nplots: {', '.join(p.name for p in pngs)} and stats.json in {out}")
    return 0
