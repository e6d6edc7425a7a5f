"""Mosaic (4 and 9 images): every surviving box stays on its object and every clearly visible
object keeps its box; the canvas cut counts towards min_visible; close_mosaic through persistent
workers; determinism of the whole training chain.

Objects are filled rectangles in 7 distinct colours on black (pad 0), class = colour, HSV off;
the drawn pixels of an object are found by nearest-palette classification and connected
components (tiles never overlap and objects keep 8 px from their image's border, so two objects
never touch). On the 1-pixel sampling slack behind the IoU >= 0.9 bound see
test_augment_geometry.py: here the warp scale stays near 1 and boxes under 40 px a side are
dropped (min_side=40), so every compared box is large enough for that bound to be fair.
"""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detforge.data import YoloDataset
from detforge.data.augment.core import AugmentParams, Compose, resize_long_side
from detforge.data.augment.mosaic import Mosaic, TileCache
from detforge.data.augment.perspective import RandomPerspective
from detforge.data.loader import build_dataloader

PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
     [255, 255, 255]], np.int32,
)  # fmt: skip
IMGSZ = 256
# (w, h, [(class, x1, y1, x2, y2), ...]) per image: 1 or 2 objects of 80-110 px
LAYOUT = [
    (256, 200, [(0, 10, 10, 100, 100), (1, 130, 90, 236, 190)]),
    (200, 256, [(2, 20, 30, 120, 140), (3, 60, 160, 180, 246)]),
    (256, 256, [(4, 80, 70, 190, 180)]),
    (240, 180, [(5, 12, 40, 110, 150), (6, 130, 20, 230, 120)]),
    (180, 240, [(0, 40, 20, 150, 110), (3, 30, 130, 150, 230)]),
    (256, 160, [(6, 100, 30, 210, 140)]),
]


def write_dataset(root: Path, gray: tuple[int, ...] = ()) -> Path:
    """The LAYOUT images as PNG + YOLO labels; images listed in ``gray`` are single-channel
    with all their objects white (class 6)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for i, (w, h, objects) in enumerate(LAYOUT):
        img = np.zeros((h, w, 3), np.uint8)
        lines = []
        for c, x1, y1, x2, y2 in objects:
            c = 6 if i in gray else c
            img[y1:y2, x1:x2] = PALETTE[c]
            lines.append(
                f"{c} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}"
            )
        pil = Image.fromarray(img[:, :, 0] if i in gray else img)
        pil.save(root / "images" / f"im{i}.png")
        (root / "labels" / f"im{i}.txt").write_text("\n".join(lines) + "\n")
    return root / "images"


def mosaic_params(**kw: float) -> AugmentParams:
    base = dict(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.5, flipud=0.5, scale=0.1,
                translate=0.1, mosaic=1.0, min_side=40.0, min_visible=0.2)  # fmt: skip
    return AugmentParams(**{**base, **kw})


def make_dataset(tmp_path: Path, aug: AugmentParams, **kw) -> YoloDataset:
    images = write_dataset(tmp_path / "ds", kw.pop("gray", ()))
    names = ["red", "green", "blue", "yellow", "magenta", "cyan", "white"]
    return YoloDataset(images, names, imgsz=IMGSZ, augment=True, aug=aug, pad_value=0,
                       cache_dir=tmp_path / "cache", **kw)  # fmt: skip


def components(img_chw: torch.Tensor) -> dict[int, list[np.ndarray]]:
    """{class: [xyxy box, ...]} of the connected regions of each palette colour."""
    img = img_chw.numpy().transpose(1, 2, 0).astype(np.int32)
    colours = np.concatenate([np.zeros((1, 3), np.int32), PALETTE])  # 0 = background / pad
    dist = ((img[:, :, None, :] - colours[None, None]) ** 2).sum(-1)
    nearest = dist.argmin(-1)
    out: dict[int, list[np.ndarray]] = {}
    for c in range(len(PALETTE)):
        n, _, stats, _ = cv2.connectedComponentsWithStats((nearest == c + 1).astype(np.uint8))
        out[c] = [np.array([x, y, x + w, y + h], float) for x, y, w, h, _ in stats[1:n]]
    return out


class ListSource:
    """A tile source over a list of (img, labels) (what Mosaic reads through ``load_tile``)."""

    def __init__(self, tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def load_tile(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img, labels = self.tiles[index]
        return img, labels.copy()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def check_boxes_on_objects(sample: dict) -> int:
    """Every box matches a drawn region of its colour (IoU >= 0.9); every drawn region of
    50 px or more a side that does not touch the border has a box. Returns the box count."""
    regions = components(sample["img"])
    labels = sample["labels"].numpy()
    for cls, *box in labels:
        best = max((iou(np.array(box), r) for r in regions[int(cls)]), default=0.0)
        assert best >= 0.9, (int(cls), box, regions[int(cls)])
    for c, boxes in regions.items():
        for r in boxes:
            inside = r.min() > 0 and r.max() < IMGSZ
            if inside and min(r[2] - r[0], r[3] - r[1]) >= 50:
                mine = labels[labels[:, 0] == c, 1:]
                assert any(iou(r, b) >= 0.9 for b in mine), (c, r, "object without its box")
    return len(labels)


@pytest.mark.parametrize("nine", [False, True])
def test_mosaic_keeps_every_box_on_its_object(tmp_path: Path, nine: bool) -> None:
    ds = make_dataset(tmp_path, mosaic_params(mosaic9=1.0 if nine else 0.0))
    boxes = classes = 0
    for epoch in range(4):
        for i in range(len(ds)):
            s = ds[(i, epoch)]
            assert s["img"].shape == (3, IMGSZ, IMGSZ)
            boxes += check_boxes_on_objects(s)
            classes += len(set(s["labels"][:, 0].tolist())) > 1
    assert boxes >= 4 * len(ds) and classes >= 3 * len(ds)  # several images per sample


def test_mosaic_mixes_gray_and_colour_tiles(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, mosaic_params(), gray=(0, 2, 4))
    assert ds.load_tile(0)[0].ndim == 2 and ds.load_tile(1)[0].ndim == 3
    for i in range(len(ds)):
        check_boxes_on_objects(ds[(i, 0)])
    # an all-gray mosaic stays one channel until the dataset replicates it at the end
    tile, labels = ds.load_tile(0)
    mosaic = Mosaic(ListSource([(tile, labels)]), IMGSZ, p=1.0)
    out = mosaic({"img": tile, "labels": labels}, np.random.default_rng(0))
    assert out["img"].shape == (2 * IMGSZ, 2 * IMGSZ)


def test_mosaic_canvas_cut_is_recorded_in_visible() -> None:
    # 4 tiles, one box each of a distinct class touching its tile's outer edges: the canvas
    # cuts some of them; visible must be the kept fraction of each box's area
    tiles = []
    for c in range(4):
        img = np.zeros((200, 256, 3), np.uint8)
        tiles.append((img, np.array([[c, 0, 0, 120, 90]], np.float32)))
    source = ListSource(tiles)
    cut = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        sample = {"img": tiles[0][0], "labels": tiles[0][1].copy()}
        out = Mosaic(source, IMGSZ, p=1.0)(sample, rng)
        x1, y1, x2, y2 = out["labels"][:, 1:].T
        area = (x2 - x1) * (y2 - y1)
        np.testing.assert_allclose(out["visible"], area / (120 * 90), rtol=1e-5)
        assert (out["labels"][:, 1:] >= 0).all() and (out["labels"][:, 1:] <= 2 * IMGSZ).all()
        cut += int((out["visible"] < 1).sum())
    assert cut > 0


def test_close_mosaic_reaches_persistent_workers(tmp_path: Path) -> None:
    # mosaic until epoch 2: a sample's classes come from several images before, from its own
    # image only from epoch 2 on, whatever the workers were started with
    aug = mosaic_params(mixup=1.0, fliplr=0.0, flipud=0.0, translate=0.0, scale=0.0,
                        min_side=2.0, min_visible=0.01)  # fmt: skip
    ds = make_dataset(tmp_path, aug, mosaic_until_epoch=2)
    own = [{c for c, *_ in objects} for _, _, objects in LAYOUT]
    loader = build_dataloader(ds, batch_size=3, shuffle=True, workers=1, seed=0)
    foreign = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        n = 0
        for batch in loader:
            for b, image_id in enumerate(batch["image_ids"]):
                cls = set(batch["targets"][batch["targets"][:, 0] == b, 1].int().tolist())
                n += bool(cls - own[image_id])
        foreign.append(n)
    assert foreign[0] >= 4 and foreign[1] >= 4, foreign
    assert foreign[2] == 0 and foreign[3] == 0, foreign
    assert not ds.mosaic_enabled(2) and ds.mosaic_enabled(1)


def test_same_seed_epoch_index_gives_the_same_sample(tmp_path: Path) -> None:
    aug = mosaic_params(hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=10.0, shear=3.0,
                        perspective=0.0005, mosaic9=0.3, mixup=0.5, copy_paste=0.5)  # fmt: skip
    a = make_dataset(tmp_path / "a", aug, seed=5)
    b = make_dataset(tmp_path / "b", aug, seed=5, tile_cache_mb=0)  # no cache: same samples
    b.set_epoch(3)
    for i in range(len(a)):
        s1, s2 = a[(i, 3)], b[i]
        assert torch.equal(s1["img"], s2["img"]) and torch.equal(s1["labels"], s2["labels"])
    assert not torch.equal(a[(0, 3)]["img"], a[(0, 4)]["img"])
    assert not torch.equal(
        a[(0, 3)]["img"], make_dataset(tmp_path / "c", aug, seed=6)[(0, 3)]["img"]
    )


def test_tile_cache_is_shared_with_forked_workers(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, mosaic_params())
    assert ds._tiles.get(3, IMGSZ) is None
    child = multiprocessing.get_context("fork").Process(target=ds.load_tile, args=(3,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    cached = ds._tiles.get(3, IMGSZ)  # decoded in the child, visible here
    assert cached is not None and not cached.flags.writeable
    tile, _ = resize_long_side(ds.load_image(3, keep_gray=True), IMGSZ)
    np.testing.assert_array_equal(cached, tile)
    assert ds._tiles.get(3, IMGSZ + 32) is None  # another training size is another tile
    assert pickle.loads(pickle.dumps(ds._tiles)).get(3, IMGSZ) is None  # spawn: private, empty


def test_tile_cache_out_of_room_stores_nothing() -> None:
    cache = TileCache(3, max_bytes=1000)
    small, big = np.ones((20, 30), np.uint8), np.ones((20, 30, 3), np.uint8)
    cache.put(0, 64, small)
    cache.put(1, 64, big)  # 1800 bytes: does not fit
    cache.put(2, 64, small)  # 600 + 600 > 1000: does not fit either
    np.testing.assert_array_equal(cache.get(0, 64), small)
    assert cache.get(1, 64) is None and cache.get(2, 64) is None


@pytest.mark.parametrize("extra", [{}, {"degrees": 10.0}, {"mosaic9": 1.0}])
def test_perspective_drawing_only_its_window_equals_the_full_canvas(
    tmp_path: Path, extra: dict
) -> None:
    # zoomed out and shifted enough for windows that reach beyond the canvas
    ds = make_dataset(tmp_path, mosaic_params(scale=0.6, translate=0.3, **extra))
    mosaic = Mosaic(ds, IMGSZ, p=1.0, p9=ds.aug.mosaic9, pad_value=0)
    fused = RandomPerspective(IMGSZ, ds.aug, 0, mosaic=mosaic)
    chained = Compose([mosaic, RandomPerspective(IMGSZ, ds.aug, 0)])
    for i in range(len(ds)):
        tile, labels = ds.load_tile(i)
        a = fused({"img": tile, "labels": labels}, np.random.default_rng(i))
        b = chained({"img": tile, "labels": labels}, np.random.default_rng(i))
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["visible"], b["visible"])
        assert a["pad"] == b["pad"] and a["ratio"] == b["ratio"]
