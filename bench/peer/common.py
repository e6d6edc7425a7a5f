"""Shared set-up for the Ultralytics peer scripts (run with the peer venv, never with detforge's).

Ultralytics reads its configuration folder when it is imported, so `prepare_offline` must run
before the first `import ultralytics`. The harness only calls Ultralytics' public API; no code of
that project (AGPL-3.0) is copied here.
"""

from __future__ import annotations

import glob
import os
import resource
import shutil
import sys
from pathlib import Path

import yaml

# Settings keys that make Ultralytics talk to the network or write logs outside the run folder.
INTEGRATION_KEYS = (
    "sync",
    "clearml",
    "comet",
    "dvc",
    "hub",
    "mlflow",
    "neptune",
    "raytune",
    "tensorboard",
    "wandb",
    "vscode_msg",
    "openvino_msg",
)


def find_ttf() -> Path:
    """Return any TrueType font on the machine, preferring matplotlib's bundled DejaVuSans."""
    try:
        import matplotlib

        bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():
            return bundled
    except ImportError:
        pass
    for pattern in ("/usr/share/fonts/**/DejaVuSans.ttf", "/usr/share/fonts/**/*.ttf"):
        hits = sorted(glob.glob(pattern, recursive=True))
        if hits:
            return Path(hits[0])
    raise FileNotFoundError("no .ttf font found; Ultralytics would try to download Arial.ttf")


def prepare_offline(out_dir: Path) -> Path:
    """Point Ultralytics at a private config folder inside `out_dir` and forbid network use.

    Must be called before `import ultralytics`. Returns the config folder.
    """
    if "ultralytics" in sys.modules:
        raise RuntimeError("prepare_offline() must run before ultralytics is imported")
    config_dir = out_dir / "yolo_config"
    font_dir = config_dir / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    font = font_dir / "Arial.ttf"
    if not font.exists():
        shutil.copyfile(find_ttf(), font)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"  # skips the start-up connectivity check only
    os.environ["YOLO_AUTOINSTALL"] = "0"  # never pip-install missing extras (e.g. faster-coco-eval)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return config_dir


def disable_integrations(out_dir: Path) -> dict:
    """Turn off every logging/analytics integration and keep Ultralytics' folders in `out_dir`."""
    from ultralytics import settings

    update = {key: False for key in INTEGRATION_KEYS if key in settings}
    folders = {"runs_dir": "runs", "weights_dir": "weights", "datasets_dir": "datasets"}
    update.update({key: str(out_dir / sub) for key, sub in folders.items() if key in settings})
    settings.update(update)
    return dict(settings)


def _link_tree(source: Path, dest: Path) -> int:
    """Mirror `source` as real folders holding one symlink per file; return the number of files."""
    count = 0
    for folder, _, files in os.walk(source):
        target_dir = dest / Path(folder).relative_to(source)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            link, target = target_dir / name, Path(folder) / name
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.symlink_to(target)
            count += 1
    return count


def mirror_dataset(data_yaml: str | Path, dest: Path) -> Path:
    """Build a writable mirror of a YOLO dataset made of symlinks; return its new data.yaml.

    Ultralytics writes `<labels dir>.cache` next to each labels folder, and as root it does write
    into folders marked read-only. It also resolves the split folders of data.yaml, so a symlinked
    folder would lead it back to the source. The mirror therefore holds real folders
    `dest/images/<split>/` and `dest/labels/<split>/` with one symlink per file: the cache lands in
    `dest/labels/` and the source is never written to. Only splits given as a folder whose path
    has an `images` component are supported.
    """
    data_yaml = Path(data_yaml).resolve()
    data = yaml.safe_load(data_yaml.read_text())
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    mirrored = {k: v for k, v in data.items() if k not in {"path", "train", "val", "test"}}
    mirrored["path"] = str(dest)
    for split in ("train", "val", "test"):
        rel = data.get(split)
        if not rel:
            continue
        images = (root / rel).resolve()
        parts = images.parts
        if not isinstance(rel, str) or not images.is_dir() or "images" not in parts:
            raise ValueError(f"{data_yaml}: '{split}' must be a folder under 'images/', got {rel}")
        i = len(parts) - 1 - parts[::-1].index("images")
        labels = Path(*parts[:i], "labels", *parts[i + 1 :])
        _link_tree(images, dest / "images" / split)
        if labels.is_dir():
            _link_tree(labels, dest / "labels" / split)
        mirrored[split] = f"images/{split}"
    out_yaml = dest / "data.yaml"
    out_yaml.write_text(yaml.safe_dump(mirrored, sort_keys=False))
    return out_yaml


def source_caches(data_yaml: str | Path) -> set[str]:
    """`*.cache` files under the source dataset folder: none should appear during a run."""
    data_yaml = Path(data_yaml).resolve()
    root = Path(yaml.safe_load(data_yaml.read_text()).get("path") or data_yaml.parent)
    root = root if root.is_absolute() else data_yaml.parent / root
    return {str(p) for p in root.rglob("*.cache")}


def peak_rss_mib() -> dict:
    """Peak resident set size of this process and of its waited-for children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "children_max": round(children, 1)}
