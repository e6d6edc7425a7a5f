"""``YoloDataset``: YOLO-format images and labels, validated, cached and turned into samples.

A sample is the dict of docs/architecture.md: ``img`` uint8 (3, H, W) RGB (for colour images a
channels-first view of (H, W, 3) pixels, not contiguous: ``collate`` copies it once, into the
batch), ``labels`` float32 (n, 5) ``[cls, x1, y1, x2, y2]`` pixels of ``img``, ``path``,
``image_id``, ``orig_shape`` (h0, w0), ``ratio``, ``pad`` (left, top), with
``(xyxy - [left, top] * 2) / ratio`` mapping a box back to the original image. In training mode
``ratio``/``pad`` describe the resize, the random scale and the shift (exact without mosaic,
rotation, shear and perspective), flips aside.

Randomness: the augmentation of sample ``i`` in epoch ``e`` uses
``numpy.random.default_rng([seed, e, i])``, so it does not depend on worker count or order. The
loader of ``build_dataloader`` passes ``(index, epoch)`` pairs read in the main process, so
``set_epoch`` also reaches persistent workers.

close_mosaic: mosaic and mixup run only for epochs ``< mosaic_until_epoch`` (the trainer passes
``epochs - close_mosaic``). Each sample decides from the epoch it is asked for, which persistent
workers receive with the index, so no state has to be pushed into the workers at the switch.

Tiles: mosaic and mixup read 3 to 9 other images per sample. In training mode the dataset keeps
the decoded images already resized to a long side of ``imgsz`` ("tiles", built from
``load_image``, so the image cache feeds it) in a ``mosaic.TileCache`` of ``tile_cache_mb``
shared by the forked loader workers. A tile is a pure function of its index, so this changes
speed, never samples. Cached tiles are read-only arrays: a transform must not write into its
input image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from detforge.data.augment.core import (
    AugmentParams,
    Sample,
    Transform,
    letterbox,
    resize_long_side,
)
from detforge.data.augment.mosaic import TileCache
from detforge.data.augment.pipeline import build_train_transforms
from detforge.data.cache import cache_path, fingerprint, load_cache, save_cache
from detforge.data.datayaml import DataSpec, list_images
from detforge.data.errors import DataError
from detforge.data.images import ImageInfo, read_image
from detforge.data.validate import report, validate_images

if TYPE_CHECKING:
    from detforge.data.imcache import ImageCache

__all__ = ["YoloDataset", "xywhn_to_xyxy"]

STRIDE = 32

PathLike = str | os.PathLike[str]


def xywhn_to_xyxy(labels: np.ndarray, w: float, h: float) -> np.ndarray:
    """(n, 5) [cls, cx, cy, w, h] normalised -> (n, 5) float32 [cls, x1, y1, x2, y2] pixels."""
    out = np.empty((len(labels), 5), np.float32)
    out[:, 0] = labels[:, 0]
    half_w, half_h = labels[:, 3] * (w / 2), labels[:, 4] * (h / 2)
    cx, cy = labels[:, 1] * w, labels[:, 2] * h
    out[:, 1], out[:, 2], out[:, 3], out[:, 4] = cx - half_w, cy - half_h, cx + half_w, cy + half_h
    return out


class YoloDataset(Dataset):
    """Images and YOLO txt labels of one split.

    Args:
        sources: folders, .txt image lists or image files (one or a list); relative paths are
            taken from ``root``.
        names: class names, a list or a dict {id: name}.
        imgsz: square network input size, a multiple of 32.
        augment: training mode (the chain of ``build_train_transforms`` per ``aug``: mosaic,
            random perspective onto an imgsz square, copy-paste, mixup, albumentations, HSV,
            flips) instead of the letterbox.
        strict: any bad label line or unusable image raises ``DataError`` instead of a warning.
        cache_dir: label cache folder (None: ``$DETFORGE_CACHE`` or ``~/.cache/detforge``);
            ``cache=False`` skips the cache.
        split: name used in messages. seed: base seed of the augmentation.
        transforms: replaces the default training chain; it receives the image resized to a
            long side of imgsz (gray as (H, W)) with ``mosaic`` (bool) in the sample, and must
            return an (imgsz, imgsz) image.
        mosaic_until_epoch: mosaic and mixup only in epochs before this one (``epochs -
            close_mosaic``); None: in every epoch.
        albumentations: extra transforms ``[{name: Blur, p: 0.1, blur_limit: 3}, ...]``
            (optional package; see ``albument.py``).
        tile_cache_mb: memory for cached tiles, shared by the loader workers (see above); taken
            only as tiles arrive; 0 turns the cache off.

    Attributes: ``image_files`` (sorted, usable images), ``labels`` (list of float32 (n, 5)
    [cls, cx, cy, w, h] normalised), ``shapes`` (list of (h0, w0)), ``names``, ``warnings``
    (every validation message), ``cache_hit``.
    """

    def __init__(
        self,
        sources: PathLike | Sequence[PathLike],
        names: Sequence[str] | Mapping[int, str],
        imgsz: int = 640,
        augment: bool = False,
        aug: AugmentParams | None = None,
        strict: bool = False,
        cache_dir: PathLike | None = None,
        pad_value: int = 114,
        *,
        root: PathLike | None = None,
        split: str = "data",
        seed: int = 0,
        cache: bool = True,
        transforms: Transform | None = None,
        mosaic_until_epoch: int | None = None,
        albumentations: Sequence[Mapping[str, Any]] = (),
        tile_cache_mb: float = 256.0,
    ) -> None:
        if imgsz <= 0 or imgsz % STRIDE:
            raise ValueError(f"imgsz must be a positive multiple of {STRIDE}, got {imgsz}")
        self.names = (
            [names[i] for i in range(len(names))] if isinstance(names, Mapping) else list(names)
        )
        if not self.names:
            raise ValueError("names: at least one class name is needed")
        self.imgsz, self.augment, self.pad_value = imgsz, augment, pad_value
        self.aug = aug if aug is not None else AugmentParams()
        self.seed, self.epoch, self.split = seed, 0, split
        self.mosaic_until_epoch = mosaic_until_epoch
        entries = list_images(sources, root=root, split=split)
        if not entries:
            src = sources if isinstance(sources, (str, os.PathLike)) else list(map(str, sources))
            raise DataError(f"{split}: no images found in {src}")
        nc = len(self.names)
        self.cache_path = cache_path(cache_dir, entries, nc) if cache else None
        fp = fingerprint(entries) if cache else ""
        records = load_cache(self.cache_path, fp, len(entries)) if self.cache_path else None
        self.cache_hit = records is not None
        if records is None:
            records = validate_images(entries, nc)
            if self.cache_path is not None:
                save_cache(self.cache_path, fp, records)
        self.warnings = report(records, split, strict)

        used = [r for r in records if r.skip is None]
        self.image_files = [r.path for r in used]
        self.labels = [r.labels for r in used]
        self.shapes = [r.shape for r in used]
        self._info = [ImageInfo(r.shape, r.orientation, r.gray) for r in used]
        # made here, in the main process, so that forked loader workers share it
        self._tile_bytes = int(tile_cache_mb * 2**20) if augment else 0
        self._tiles = TileCache(len(self), self._tile_bytes) if self._tile_bytes > 0 else None
        self.transforms: Transform = (
            transforms
            if transforms is not None
            else build_train_transforms(
                imgsz, self.aug, source=self, pad_value=pad_value, albumentations=albumentations
            )
        )

    @classmethod
    def from_spec(cls, spec: DataSpec, split: str, **kwargs: Any) -> YoloDataset:
        """Dataset of one split of a ``DataSpec``; kwargs as for the constructor."""
        return cls(spec.split(split), spec.names, root=spec.root, split=split, **kwargs)

    def __len__(self) -> int:
        return len(self.image_files)

    def keep_images(self, indices: Sequence[int]) -> None:
        """Keep only images ``indices`` (in that order), e.g. ``data.fraction``'s subset; call
        before caches, rect shapes and loaders are made, which are sized by ``len(self)``."""
        idx = [int(i) for i in indices]
        self.image_files = [self.image_files[i] for i in idx]
        self.labels = [self.labels[i] for i in idx]
        self.shapes = [self.shapes[i] for i in idx]
        self._info = [self._info[i] for i in idx]
        self._tiles = TileCache(len(self), self._tile_bytes) if self._tile_bytes > 0 else None

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for the augmentation seed (and by ``build_dataloader``'s sampler)."""
        self.epoch = int(epoch)

    # Optional modes, off by default (class attributes, so __init__ stays as it is):
    # rectangular validation (data/rect.py) and the decoded-image cache (data/imcache.py).
    rect_shapes: list[tuple[int, int]] | None = None
    image_cache: ImageCache | None = None

    def set_rect_shapes(self, shapes: Sequence[tuple[int, int]] | None) -> None:
        """Letterbox image ``i`` onto a ``shapes[i]`` = (H, W) canvas instead of the imgsz
        square (validation only; see ``data.rect.enable_rect``). None: back to squares."""
        if shapes is not None and len(shapes) != len(self):
            raise ValueError(f"{len(shapes)} rect shapes for {len(self)} images")
        self.rect_shapes = None if shapes is None else [(int(h), int(w)) for h, w in shapes]

    def set_image_cache(self, cache: ImageCache | None) -> None:
        """Serve ``load_image`` from ``cache`` (see ``data.imcache.cache_images``); None: off."""
        if cache is not None and len(cache) != len(self):
            raise ValueError(f"image cache of {len(cache)} images for {len(self)} images")
        self.image_cache = cache

    def load_image(self, index: int, keep_gray: bool = False) -> np.ndarray:
        """Decoded original image ``index``: RGB uint8 (h0, w0, 3), or (h0, w0) if gray and
        ``keep_gray``."""
        if self.image_cache is not None:
            return self.image_cache.get(index, keep_gray=keep_gray)
        return read_image(self.image_files[index], self._info[index], keep_gray=keep_gray)

    def mosaic_enabled(self, epoch: int) -> bool:
        """Whether mosaic and mixup may run in ``epoch`` (close_mosaic)."""
        return self.mosaic_until_epoch is None or epoch < self.mosaic_until_epoch

    def load_tile(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` resized to a long side of imgsz (read-only uint8 (h, w, 3), or (h, w)
        if gray) and its labels float32 (n, 5) [cls, x1, y1, x2, y2] in its pixels (a new array)."""
        tile = self._tiles.get(index, self.imgsz) if self._tiles is not None else None
        if tile is None:
            tile, _ = resize_long_side(self.load_image(index, keep_gray=True), self.imgsz)
            if self._tiles is not None:
                self._tiles.put(index, self.imgsz, tile)
        h, w = tile.shape[:2]
        return tile, xywhn_to_xyxy(self.labels[index], w, h)

    def augmented(self, index: int, epoch: int, seed: int | None = None) -> Sample:
        """Training sample ``index`` of ``epoch`` as the transforms leave it: ``img`` uint8
        (imgsz, imgsz[, 3]), ``labels`` (n, 5) xyxy pixels, ``ratio``, ``pad``; ``seed``
        overrides the dataset's (augment previews)."""
        rng = np.random.default_rng([self.seed if seed is None else seed, epoch, index])
        tile, labels = self.load_tile(index)
        sample = {
            "img": tile, "labels": labels, "ratio": tile.shape[1] / self.shapes[index][1],
            "pad": (0.0, 0.0), "mosaic": self.mosaic_enabled(epoch),
        }  # fmt: skip
        return self.transforms(sample, rng)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        epoch = self.epoch
        if isinstance(index, tuple):
            index, epoch = index
        index = int(index)
        if index < 0:
            index += len(self)
        h0, w0 = self.shapes[index]
        if self.augment:
            sample = self.augmented(index, epoch)
            img, labels = sample["img"], sample["labels"]
            ratio, pad = float(sample["ratio"]), tuple(float(p) for p in sample["pad"])
        else:
            img0 = self.load_image(index, keep_gray=True)
            labels = xywhn_to_xyxy(self.labels[index], w0, h0)
            if self.rect_shapes is not None:
                img, labels, ratio, pad = letterbox(
                    img0, labels, self.imgsz, self.pad_value, shape=self.rect_shapes[index]
                )
            else:
                img, labels, ratio, pad = letterbox(img0, labels, self.imgsz, self.pad_value)
        if img.ndim == 2:
            chw = torch.from_numpy(np.repeat(img[None], 3, axis=0))
        else:
            if not img.flags.writeable:  # cached pixels: the sample must not alias them
                img = img.copy()
            # a (3, H, W) view, not a copy: collate's copy into the batch does the transpose
            chw = torch.from_numpy(img).permute(2, 0, 1)
        return {
            "img": chw,
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)),
            "path": self.image_files[index],
            "image_id": index,
            "orig_shape": (h0, w0),
            "ratio": ratio,
            "pad": pad,
        }
