"""Mosaic: 4 (or 9) images on one (2 size, 2 size) canvas, cut down later by the perspective.

Images come as "tiles": the decoded image resized so its long side is ``size``, with its labels
in tile pixels (``YoloDataset.load_tile``). The sample's own tile is one of them; the others are
drawn at random from the source with the sample's generator, so a mosaic is a pure function of
(seed, epoch, index) like every other augmentation.

Layouts (our own; the output window of ``RandomPerspective`` is the canvas centre at scale 1):

- 4 images: a random centre point ``(xc, yc)`` in ``[size/2, 3 size/2]^2`` splits the canvas in
  4 quadrants; each tile touches the centre point with one corner (the bottom-right corner of the
  top-left tile, and so on) and whatever falls off the canvas is cut. The sample's own image
  takes a random quadrant. Tiles never overlap, so no object hides another.
- 9 images: tiles shrunk to a long side of ``2 size / 3``, centred in the cells of a 3 x 3 grid
  of (2 size / 3) cells covering the canvas, the grid shifted by up to half a cell in x and y
  (what falls off is cut). The sample's own image is the centre cell. Objects come out smaller,
  which is the point of the 9-image variant.

Boxes are shifted with their tile, clipped to the canvas, and those cut away entirely are
dropped; the cut fraction goes into the sample's ``visible`` so that the perspective's
``min_visible`` rule counts both cuts. Size rules (min_side, min_area) wait for the final warp,
whose scale is not known here.
"""

from __future__ import annotations

import mmap
import multiprocessing
from typing import Any

import cv2
import numpy as np

from detforge.data.augment.core import Layout, Sample, Tile, TileSource, box_visible

__all__ = ["TileCache", "Mosaic", "mosaic4", "mosaic9"]


class TileCache:
    """Tiles shared by all loader workers: one anonymous shared memory block, made in the main
    process (before the workers fork), filled by whichever process first decodes a tile.

    Without it each worker would decode and keep its own copy of every tile: W times the decoding
    in the first epoch and W times the memory. Layout: a table (n, 5) int64 ``[offset, h, w,
    channels (0: gray), imgsz]`` (offset -1: not cached), then the pixels, appended (no eviction:
    mosaic partners are uniformly random, and for uniform access any cache of C of N tiles hits
    C / N whatever it evicts). A lock inherited by the forked workers guards the table and the
    append position; cached tiles come back as read-only views. Tiles are pure functions of their
    index, so the cache changes speed, never samples. Memory is taken from the OS only as tiles
    arrive. Pickled (the ``spawn`` start method) it becomes an empty cache private to the process.
    """

    def __init__(self, n: int, max_bytes: int) -> None:
        self.n, self.max_bytes = n, max_bytes
        self._head = (1 + 5 * n) * 8  # append position, then the table
        self._mm = mmap.mmap(-1, self._head + max_bytes)  # anonymous, MAP_SHARED: survives fork
        words = np.frombuffer(self._mm, np.int64, 1 + 5 * n)
        self._used, self._table = words[:1], words[1:].reshape(n, 5)
        self._table[:, 0] = -1
        self._lock = multiprocessing.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"n": self.n, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["n"], state["max_bytes"])

    def get(self, index: int, imgsz: int) -> np.ndarray | None:
        """The cached tile of ``index`` at ``imgsz`` (read-only), or None."""
        with self._lock:
            offset, h, w, c, size = self._table[index].tolist()
        if offset < 0 or size != imgsz:
            return None
        shape = (h, w, c) if c else (h, w)
        tile = np.frombuffer(self._mm, np.uint8, h * w * max(c, 1), self._head + offset)
        tile = tile.reshape(shape)
        tile.flags.writeable = False
        return tile

    def put(self, index: int, imgsz: int, tile: np.ndarray) -> None:
        """Store ``tile`` (uint8 (h, w) or (h, w, c)) unless cached already or out of room."""
        with self._lock:
            used = int(self._used[0])
            if self._table[index, 0] >= 0 or used + tile.nbytes > self.max_bytes:
                return
            dst = np.frombuffer(self._mm, np.uint8, tile.nbytes, self._head + used)
            dst[:] = tile.reshape(-1)
            c = tile.shape[2] if tile.ndim == 3 else 0
            self._table[index] = (used, tile.shape[0], tile.shape[1], c, imgsz)
            self._used[0] = used + tile.nbytes


def _place_labels(
    tiles: list[Tile], origins: np.ndarray, visible: list[np.ndarray], side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shift each tile's labels by its origin (k, 2), clip them to the (side, side) canvas and
    drop those cut away; the kept fraction multiplies ``visible``. Returns (labels (m, 5),
    visible (m,))."""
    shift = np.concatenate([origins, origins], axis=1).astype(np.float32)  # (k, 4)
    counts = [len(labels) for _, labels in tiles]
    if not sum(counts):
        return np.zeros((0, 5), np.float32), np.zeros(0, np.float32)
    labels = np.concatenate([lab for _, lab in tiles]).astype(np.float32)
    labels[:, 1:5] += np.repeat(shift, counts, axis=0)
    vis = np.concatenate(visible).astype(np.float32)
    boxes = labels[:, 1:5]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.clip(boxes, 0, side, out=boxes)
    cut = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    vis *= cut / np.maximum(area, 1e-12)
    keep = cut > 0
    return labels[keep], vis[keep]


def mosaic4(
    tiles: list[Tile], visible: list[np.ndarray], size: int, rng: np.random.Generator
) -> tuple[Layout, np.ndarray, np.ndarray]:
    """4 tiles around a random centre on a (2 size, 2 size) canvas (tile 0 is the sample's).

    Returns (layout, labels (m, 5) canvas pixels, visible (m,)).
    """
    xc, yc = (int(v) for v in np.round(rng.uniform(0.5 * size, 1.5 * size, 2)))
    quadrant = rng.permutation(4)  # quadrant of each tile: 0 TL, 1 TR, 2 BL, 3 BR
    sizes = np.array([img.shape[1::-1] for img, _ in tiles])  # (4, 2) as (w, h)
    right, bottom = quadrant % 2 == 1, quadrant >= 2
    origins = np.stack(
        [np.where(right, xc, xc - sizes[:, 0]), np.where(bottom, yc, yc - sizes[:, 1])], axis=1
    )
    labels, vis = _place_labels(tiles, origins, visible, 2 * size)
    return Layout([img for img, _ in tiles], origins, 2 * size, 2 * size), labels, vis


def mosaic9(
    tiles: list[Tile], visible: list[np.ndarray], size: int, rng: np.random.Generator
) -> tuple[Layout, np.ndarray, np.ndarray, float]:
    """9 tiles shrunk by 2/3 in a shifted 3 x 3 grid on a (2 size, 2 size) canvas.

    Tile 0 (the sample's) takes the centre cell. Returns (layout, labels, visible, tile 0's
    shrink factor).
    """
    cell = 2 * size / 3
    shift = rng.uniform(-0.5, 0.5, 2) * cell
    shrunk: list[Tile] = []
    for img, labels in tiles:
        h, w = img.shape[:2]
        k = cell / max(h, w)
        # bilinear: INTER_AREA at this non-integer factor costs ~5x more, 9 times per sample
        small = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))))
        scaled = labels.copy()
        # the sides were rounded: scale boxes by the exact per-axis factors
        fx, fy = small.shape[1] / w, small.shape[0] / h
        scaled[:, 1:5] *= np.array([fx, fy, fx, fy], np.float32)
        shrunk.append((small, scaled))
    # cell order: centre first (tile 0), then the 8 others row by row
    cells = [(1, 1)] + [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
    sizes = np.array([img.shape[1::-1] for img, _ in shrunk], np.float64)  # (9, 2) (w, h)
    cell_xy = np.array([(c, r) for r, c in cells], np.float64) * cell + shift
    origins = np.round(cell_xy + (cell - sizes) / 2).astype(int)
    labels, vis = _place_labels(shrunk, origins, visible, 2 * size)
    layout = Layout([img for img, _ in shrunk], origins, 2 * size, 2 * size)
    return layout, labels, vis, shrunk[0][0].shape[1] / tiles[0][0].shape[1]


class Mosaic:
    """With probability ``p``, replace the sample by a mosaic of it and 3 (with probability
    ``p9`` of a mosaic: 8) random other images of ``source``; skipped when the sample's
    ``mosaic`` flag is False (close_mosaic). Output: a (2 size, 2 size[, 3]) canvas.

    ``place`` does the same without drawing the canvas (for ``RandomPerspective(mosaic=...)``,
    which draws only the part it shows); both consume the generator identically.
    """

    def __init__(
        self, source: TileSource, size: int, p: float = 1.0, p9: float = 0.0, pad_value: int = 114
    ) -> None:
        self.source, self.size, self.p, self.p9, self.pad_value = source, size, p, p9, pad_value

    def __repr__(self) -> str:
        return f"Mosaic(size={self.size}, p={self.p}, p9={self.p9})"

    def place(self, sample: Sample, rng: np.random.Generator) -> Layout | None:
        """Draw the mosaic's images and layout; update the sample's ``labels``, ``visible``,
        ``ratio`` and ``pad`` (of the sample's own image) and return the layout, or None (and
        the sample untouched) when there is no mosaic this time."""
        if not sample.get("mosaic", True):
            return None
        u = rng.random(2)
        if u[0] >= self.p:
            return None
        nine = bool(u[1] < self.p9)
        others = rng.integers(0, len(self.source), 8 if nine else 3)
        tiles = [(sample["img"], sample["labels"])]
        tiles += [self.source.load_tile(int(i)) for i in others]
        visible = [box_visible(sample)] + [np.ones(len(t[1]), np.float32) for t in tiles[1:]]
        ratio = sample.get("ratio", 1.0)
        px, py = sample.get("pad", (0.0, 0.0))
        if nine:
            layout, labels, vis, r = mosaic9(tiles, visible, self.size, rng)
            ratio, px, py = ratio * r, px * r, py * r
        else:
            layout, labels, vis = mosaic4(tiles, visible, self.size, rng)
        ox, oy = layout.origins[0].tolist()
        sample.update(labels=labels, visible=vis, ratio=ratio, pad=(px + ox, py + oy))
        return layout

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        layout = self.place(sample, rng)
        if layout is not None:
            sample["img"] = layout.render(0, 0, layout.width, layout.height, self.pad_value)
        return sample
