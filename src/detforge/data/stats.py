"""Dataset statistics (``detforge data-stats``): what is in each split, as numbers, a table and
plots.

Per split: images, boxes, images without boxes, boxes and images per class, box sizes in the
COCO bands (area in original pixels: small < 32², medium < 96², large otherwise), histograms
of box size (sqrt of the area) and aspect ratio (width / height), image resolutions, and
duplicate images (byte-identical files, found by a BLAKE2b hash of the content), within a split
and across splits (a val image that is also a train image inflates validation scores).

Counts are over the validated labels, i.e. what training sees (see ``data/validate.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from detforge.data.dataset import YoloDataset
from detforge.data.datayaml import DataSpec, load_data_yaml

__all__ = ["SIZE_EDGES", "ASPECT_EDGES", "file_hash", "split_stats", "data_stats",
           "format_stats", "plot_stats"]  # fmt: skip

SMALL, MEDIUM = 32**2, 96**2
# sqrt(area) in pixels; 32 and 96 are edges so the COCO bands read off the histogram
SIZE_EDGES = [0.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 256.0, 512.0, float("inf")]
# width / height, symmetric around 1 on a log scale
ASPECT_EDGES = [0.0, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0, 3 / 2, 2.0, 3.0, 4.0, float("inf")]


def file_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (128-bit) hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _hist(values: np.ndarray, edges: Sequence[float]) -> dict[str, list]:
    """Counts in [edges[i], edges[i + 1]) (the last bin closed)."""
    counts = np.histogram(values, bins=np.asarray(edges, np.float64))[0]
    return {"edges": list(edges), "counts": counts.tolist()}


def split_stats(
    paths: Sequence[str],
    labels: Sequence[np.ndarray],
    shapes: Sequence[tuple[int, int]],
    names: Sequence[str],
    hashes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Statistics of one split.

    labels: per image (n, 5) ``[cls, cx, cy, w, h]`` normalised; shapes: per image (h0, w0);
    hashes: per image content hash (None: no duplicate search).
    """
    lab = [np.asarray(x, np.float64).reshape(-1, 5) for x in labels]
    all_lab = np.concatenate(lab) if lab else np.zeros((0, 5))
    wh0 = np.repeat(np.array([(w, h) for h, w in shapes], np.float64).reshape(-1, 2),
                    [len(x) for x in lab], axis=0)  # fmt: skip
    bw, bh = all_lab[:, 3] * wh0[:, 0], all_lab[:, 4] * wh0[:, 1]
    area = bw * bh
    cls = all_lab[:, 0].astype(np.int64)
    nc = len(names)
    boxes_per_class = np.bincount(cls, minlength=nc)
    images_per_class = np.zeros(nc, np.int64)
    for x in lab:
        images_per_class[np.unique(x[:, 0].astype(np.int64))] += 1
    counts = [len(x) for x in lab]
    out: dict[str, Any] = {
        "images": len(lab),
        "boxes": int(len(all_lab)),
        "images_without_boxes": int(sum(c == 0 for c in counts)),
        "boxes_per_image_median": float(np.median(counts)) if counts else 0.0,
        "boxes_per_image_max": int(max(counts, default=0)),
        "per_class": {
            n: {"boxes": int(boxes_per_class[k]), "images": int(images_per_class[k])}
            for k, n in enumerate(names)
        },
        "box_sizes": {
            "small": int((area < SMALL).sum()),
            "medium": int(((area >= SMALL) & (area < MEDIUM)).sum()),
            "large": int((area >= MEDIUM).sum()),
        },
        "size_hist": _hist(np.sqrt(area), SIZE_EDGES),
        "aspect_hist": _hist(bw / np.maximum(bh, 1e-9), ASPECT_EDGES),
        "resolutions": dict(Counter(f"{w}x{h}" for h, w in shapes).most_common()),
    }
    if hashes is not None:
        groups: dict[str, list[str]] = defaultdict(list)
        for p, h in zip(paths, hashes, strict=True):
            groups[h].append(str(p))
        dup = sorted(g for g in groups.values() if len(g) > 1)
        out["duplicate_groups"] = dup
        out["duplicate_images"] = sum(len(g) - 1 for g in dup)  # copies beyond the first
    return out


def data_stats(
    data: DataSpec | YoloDataset | str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    find_duplicates: bool = True,
) -> dict[str, Any]:
    """Statistics of every split of a dataset.

    data: a ``data.yaml`` path, a parsed ``DataSpec`` (its splits are validated as for
    training, using the label cache in ``cache_dir``) or one ``YoloDataset`` (reported under
    its ``split`` name). splits: which ones (default: train, val and test when present).
    find_duplicates: hash every image file (reads all image bytes once).

    Returns ``{"names", "splits": {split: split_stats(...)}, "cross_split_duplicates"}``, the
    last a list of groups of identical files found in more than one split (only with
    ``find_duplicates``).
    """
    if isinstance(data, YoloDataset):
        sets = {data.split: data}
        names = list(data.names)
    else:
        spec = data if isinstance(data, DataSpec) else load_data_yaml(data)
        wanted = splits or [s for s in ("train", "val", "test") if spec.split(s)]
        sets = {s: YoloDataset.from_spec(spec, s, cache_dir=cache_dir) for s in wanted}
        names = list(spec.names)
    result: dict[str, Any] = {"names": names, "splits": {}}
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for split, ds in sets.items():
        hashes = None
        if find_duplicates:
            with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as ex:
                hashes = list(ex.map(file_hash, ds.image_files))
            for p, h in zip(ds.image_files, hashes, strict=True):
                by_hash[h].append((split, str(p)))
        result["splits"][split] = split_stats(ds.image_files, ds.labels, ds.shapes, names, hashes)
    if find_duplicates:
        result["cross_split_duplicates"] = sorted(
            [p for _, p in g] for g in by_hash.values() if len({s for s, _ in g}) > 1
        )
    return result


def _pct(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if total else str(n)


def _edge(x: float) -> str:
    if x == float("inf"):
        return "inf"
    if 0 < x < 1:  # 1/3 reads better than 0.333
        f = Fraction(x).limit_denominator(16)
        return f"{f.numerator}/{f.denominator}"
    return f"{x:g}"


def _bins(hist: dict[str, list]) -> list[str]:
    e = hist["edges"]
    return [f"{_edge(a)}-{_edge(b)}" for a, b in zip(e[:-1], e[1:], strict=True)]


def format_stats(stats: dict[str, Any]) -> str:
    """The statistics of ``data_stats`` as a plain-text report (one block per split)."""
    lines: list[str] = []
    for split, s in stats["splits"].items():
        dup = ""
        if "duplicate_images" in s:
            dup = f", {s['duplicate_images']} duplicate images"
        lines.append(
            f"{split}: {s['images']} images, {s['boxes']} boxes, "
            f"{s['images_without_boxes']} without boxes{dup}"
        )
        width = max(len("class"), *(len(n) for n in s["per_class"]))
        lines.append(f"  {'class':<{width}} {'boxes':>8} {'images':>8}")
        for name, c in s["per_class"].items():
            lines.append(f"  {name:<{width}} {c['boxes']:>8} {c['images']:>8}")
        sz, n = s["box_sizes"], s["boxes"]
        lines.append(
            f"  box sizes (COCO, original px): small {_pct(sz['small'], n)}, "
            f"medium {_pct(sz['medium'], n)}, large {_pct(sz['large'], n)}"
        )
        for title, key in (("box sqrt(area) px", "size_hist"), ("box aspect w/h", "aspect_hist")):
            cells = [f"{b}: {c}" for b, c in zip(_bins(s[key]), s[key]["counts"], strict=True)]
            lines.append(f"  {title}: " + ", ".join(cells))
        res = ", ".join(f"{k} x{v}" for k, v in list(s["resolutions"].items())[:5])
        more = len(s["resolutions"]) - 5
        lines.append(f"  resolutions: {res}" + (f" (+{more} more)" if more > 0 else ""))
        for g in s.get("duplicate_groups", [])[:10]:
            lines.append("  identical: " + ", ".join(g))
    if "cross_split_duplicates" in stats:
        cross = stats["cross_split_duplicates"]
        lines.append(f"identical images in more than one split: {len(cross)} groups")
        lines += ["  " + ", ".join(g) for g in cross[:10]]
    return "\n".join(lines)


def plot_stats(stats: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write per split ``{split}_classes.png``, ``{split}_sizes.png`` and
    ``{split}_aspect.png`` into ``out_dir``; return their paths."""
    # Figure + Agg canvas directly: no pyplot global state, no GUI backend, thread-safe
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, s in stats["splits"].items():
        names = list(s["per_class"])
        fig = Figure(figsize=(7, 0.9 + 0.3 * max(3, len(names))))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        y = np.arange(len(names))
        ax.barh(y - 0.2, [s["per_class"][n]["boxes"] for n in names], 0.4, label="boxes")
        ax.barh(y + 0.2, [s["per_class"][n]["images"] for n in names], 0.4, label="images")
        ax.set_yticks(y, names)
        ax.set_ylim(len(names) - 0.5, -0.5)  # first class on top, no empty margins
        ax.legend()
        ax.set_title(f"{split}: boxes and images per class")
        written.append(_save(fig, out / f"{split}_classes.png"))

        for key, title, fname in (
            ("size_hist", "box size sqrt(area), original px (COCO small < 32, large >= 96)",
             "sizes"),
            ("aspect_hist", "box aspect ratio (width / height)", "aspect"),
        ):  # fmt: skip
            fig = Figure(figsize=(7, 3.5))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            labels = _bins(s[key])
            colors = None
            if key == "size_hist":
                upper = s[key]["edges"][1:]
                colors = ["C3" if u <= 32 else "C1" if u <= 96 else "C2" for u in upper]
            ax.bar(range(len(labels)), s[key]["counts"], color=colors)
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
            ax.set_title(f"{split}: {title}")
            fig.tight_layout()
            written.append(_save(fig, out / f"{split}_{fname}.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
