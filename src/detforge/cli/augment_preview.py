"""``detforge augment-preview``: a grid of augmented training images with their boxes."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Arg, Command, parse

_RULE = "must be a whole number"
COMMAND = Command(
    "augment-preview",
    "Draw a grid of augmented training images as the training chain makes them in an epoch.",
    "detforge augment-preview data=... [n=16] [epoch=0] [out=augment_preview.png] [settings]",
    (
        Arg("cfg", str, None, "settings file (YAML)"),
        Arg("n", int, 16, "images in the grid", check=lambda v: v >= 1, rule=_RULE),
        Arg("epoch", int, 0, "epoch whose augmentation is shown", check=lambda v: v >= 0,
            rule=_RULE),
        Arg("out", str, "augment_preview.png", "PNG to write"),
    ),
)  # fmt: skip


def run(args: Sequence[str]) -> int:
    from ..config import load_config
    from ..data.datayaml import load_data_yaml
    from ..engine.setup_data import build_train_set, resolve_data_yaml
    from ..report.preview import augment_preview

    p = parse(COMMAND, args)
    cfg = load_config(p.settings, cfg_file=p.special["cfg"])
    n, epoch = p.special["n"], p.special["epoch"]
    dataset = build_train_set(cfg, load_data_yaml(resolve_data_yaml(cfg)))
    out = augment_preview(dataset, n=n, out_png=p.special["out"], seed=cfg.train.seed, epoch=epoch)
    print(f"{n} augmented training images (epoch {epoch}) drawn to {out}")
    return 0
