"""Dataset commands: ``data-stats``, ``convert``, ``split`` (arguments are key=value)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config.fields import ConfigError, suggest
from .config.loader import parse_value

__all__ = ["parse_args", "cmd_data_stats", "cmd_convert", "cmd_split"]


def parse_args(
    command: str, args: Sequence[str], spec: dict[str, tuple[type, Any]]
) -> dict[str, Any]:
    """``key=value`` arguments checked against ``{key: (type, default)}``; a default of
    ``...`` means required."""
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"detforge {command}: argument '{arg}': expected key=value")
        key, text = arg.split("=", 1)
        if key not in spec:
            raise ConfigError(f"detforge {command}: unknown argument '{key}'{suggest(key, spec)}")
        tp = spec[key][0]
        value = parse_value(text) if tp is not str else text
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if tp is list and isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, tp):
            raise ConfigError(f"detforge {command}: {key}: expected {tp.__name__}, got {text!r}")
        out[key] = value
    for key, (_, default) in spec.items():
        if key not in out:
            if default is ...:
                raise ConfigError(f"detforge {command}: missing {key}=")
            out[key] = default
    return out


def cmd_data_stats(args: Sequence[str]) -> int:
    from .data.demo import ensure_demo_dataset
    from .data.stats import data_stats, format_stats, plot_stats
    from .eval.cocojson import write_json_atomic

    a = parse_args(
        "data-stats",
        args,
        {"data": (str, None), "out": (str, "runs/data_stats"), "cache_dir": (str, None)},
    )
    data = a["data"] or ensure_demo_dataset(Path(a["cache_dir"]) if a["cache_dir"] else None)
    stats = data_stats(data, cache_dir=a["cache_dir"])
    print(format_stats(stats))
    out = Path(a["out"])
    pngs = plot_stats(stats, out)
    write_json_atomic(out / "stats.json", stats, indent=1)
    print(f"\nplots: {', '.join(p.name for p in pngs)} and stats.json in {out}")
    return 0


def cmd_convert(args: Sequence[str]) -> int:
    from .data.convert import coco_to_yolo, yolo_to_coco
    from .data.voc import voc_to_yolo

    keys = {
        "from": (str, None),
        "to": (str, None),
        "json": (str, None),
        "xml": (str, None),
        "images": (str, None),
        "out": (str, ...),
        "split": (str, "train"),
        "data": (str, None),
        "names": (list, None),
        "keep_difficult": (bool, True),
        "one_based": (bool, True),
        "copy": (str, "copy"),
    }
    a = parse_args("convert", args, keys)
    src, dst = a["from"], a["to"]
    if src == "coco" and a["json"] and a["images"]:
        report = coco_to_yolo(a["json"], a["images"], a["out"], split=a["split"], copy=a["copy"])
    elif src == "voc" and a["xml"] and a["images"]:
        report = voc_to_yolo(
            a["xml"], a["images"], a["out"], names=a["names"], split=a["split"],
            keep_difficult=a["keep_difficult"], one_based=a["one_based"], copy=a["copy"],
        )  # fmt: skip
    elif dst == "coco" and a["data"]:
        gt = yolo_to_coco(a["data"], a["split"], a["out"])
        print(f"{len(gt['images'])} images, {len(gt['annotations'])} boxes -> {a['out']}")
        return 0
    else:
        raise ConfigError(
            "detforge convert: use from=coco json=... images=... out=..., "
            "from=voc xml=... images=... out=..., or to=coco data=... split=val out=x.json"
        )
    print(report.summary())
    for m in report.messages:
        print(f"  {m}")
    return 0


def cmd_split(args: Sequence[str]) -> int:
    from .data.split import split_dataset

    a = parse_args(
        "split",
        args,
        {
            "src": (str, ...),
            "out": (str, ...),
            "val": (float, 0.2),
            "seed": (int, 0),
            "stratify": (bool, True),
            "layout": (str, "lists"),
            "names": (list, None),
        },
    )
    if not 0 < a["val"] < 1:
        raise ConfigError(f"detforge split: val must be a fraction in (0, 1), got {a['val']}")
    res = split_dataset(
        a["src"],
        a["out"],
        val_fraction=a["val"],
        seed=a["seed"],
        stratify=a["stratify"],
        names=a["names"],
        layout=a["layout"],
    )
    print(f"{len(res.train)} train / {len(res.val)} val images; data.yaml: {res.data_yaml}")
    print(f"class names ({res.names_from}): {', '.join(res.names)}")
    return 0
