"""Decoded-image cache, in RAM or as ``.npy`` files on disk (``data.cache: ram | disk``).

What is cached: the decoded original image, EXIF orientation applied, gray kept as one channel
(uint8 (h0, w0) or (h0, w0, 3)): exactly what ``YoloDataset.load_image`` returns. Caching
originals rather than pre-resized copies keeps every sample bit-identical with and without the
cache whatever the augmentation pipeline does first (the training affine samples from
originals up to twice ``imgsz``; mosaic and mixup load extra images through ``load_image``
too). The price is memory for very large photos, which is why the size is printed before
anything is loaded and checked against free RAM / disk.

RAM: a list of read-only numpy arrays built in the main process before the loader forks its
workers, so the workers share the pages (copy-on-write, never written). A pipeline step that
writes into its input in place fails loudly instead of corrupting the cache.

Disk: one ``.npy`` per image under ``<cache_dir>/images/``, named by a hash of the image's path,
size and modification time, so a changed image gets a new file and a second run reuses the
existing ones. Files are written atomically; a file that cannot be read falls back to decoding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psutil

from detforge.data.cache import default_cache_dir
from detforge.data.errors import DataError
from detforge.data.images import ImageInfo, read_image

__all__ = ["ImageCache", "cache_nbytes", "disk_cache_file", "build_image_cache", "cache_images"]

CacheMode = Literal["ram", "disk"]
DISK_CACHE_VERSION = 1
_LOGGER = logging.getLogger("detforge.data")
# warn above this share of the available RAM, refuse above the second (the model, the loader
# workers and the OS need the rest)
_RAM_WARN, _RAM_MAX = 0.5, 0.9


def _human(n: float) -> str:
    """Bytes as text: '512 B', '1.5 KB', '2.0 GB'."""
    if n < 1024:
        return f"{int(n)} B"
    exp = min(3, int(np.log2(n) // 10))
    return f"{n / 1024**exp:.1f} {('KB', 'MB', 'GB')[exp - 1]}"


def _expected_shape(info: ImageInfo) -> tuple[int, ...]:
    return info.shape if info.gray else (*info.shape, 3)


def cache_nbytes(infos: Sequence[ImageInfo]) -> int:
    """Bytes the decoded images take (from their header shapes, before decoding anything)."""
    return int(sum(int(np.prod(_expected_shape(i))) for i in infos))


def disk_cache_file(path: str | os.PathLike[str], cache_dir: Path) -> Path:
    """``.npy`` file of an image: a hash of its path, size and mtime_ns under ``cache_dir``."""
    st = os.stat(path)
    key = f"v{DISK_CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return cache_dir / "images" / f"{digest}.npy"


def _npy_matches(file: Path, shape: tuple[int, ...]) -> bool:
    """True if ``file`` is an uint8 .npy of ``shape`` (reads the header only)."""
    fmt = np.lib.format
    try:
        with open(file, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            stored, _fortran, dtype = read(f)
    except (OSError, ValueError):
        return False
    return tuple(stored) == tuple(shape) and dtype == np.uint8


class ImageCache:
    """Cached decoded images of one dataset, by dataset index.

    paths, infos: every image's file and header facts; arrays (ram) or files (disk) by index;
    nbytes: decoded size of all images; written: .npy files written when built (disk).
    ``get(i, keep_gray)`` returns what ``read_image(paths[i], infos[i], keep_gray)`` would.
    """

    def __init__(
        self,
        mode: CacheMode,
        paths: Sequence[str],
        infos: Sequence[ImageInfo],
        arrays: list[np.ndarray] | None = None,
        files: list[Path] | None = None,
        nbytes: int = 0,
        written: int = 0,
    ) -> None:
        self.mode, self.paths, self.infos = mode, list(paths), list(infos)
        self.arrays, self.files = arrays, files
        self.nbytes, self.written = nbytes, written

    def __len__(self) -> int:
        return len(self.paths)

    def _stored(self, index: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[index]
        assert self.files is not None
        try:
            img = np.load(self.files[index], allow_pickle=False)
            if img.shape == _expected_shape(self.infos[index]) and img.dtype == np.uint8:
                return img
        except (OSError, ValueError):
            pass
        # removed or damaged after the cache was built: decode instead of failing the epoch
        return read_image(self.paths[index], self.infos[index], keep_gray=True)

    def get(self, index: int, keep_gray: bool = False) -> np.ndarray:
        """Image ``index``: uint8 (h0, w0, 3) RGB, or (h0, w0) if gray and ``keep_gray``."""
        img = self._stored(index)
        if img.ndim == 2 and not keep_gray:
            return np.repeat(img[:, :, None], 3, axis=2)
        return img


def _decode(path: str, info: ImageInfo) -> np.ndarray:
    return read_image(path, info, keep_gray=True)


def _check_ram(nbytes: int, split: str) -> None:
    available = psutil.virtual_memory().available
    if nbytes > _RAM_MAX * available:
        raise DataError(
            f"{split}: cache=ram needs {_human(nbytes)} but only {_human(available)} of RAM is "
            "available; use cache=disk or cache=none"
        )
    if nbytes > _RAM_WARN * available:
        _LOGGER.warning(
            "%s: the image cache takes %s, over half the available RAM (%s)",
            split, _human(nbytes), _human(available),
        )  # fmt: skip


def build_image_cache(
    paths: Sequence[str],
    infos: Sequence[ImageInfo],
    mode: CacheMode,
    cache_dir: str | os.PathLike[str] | None = None,
    split: str = "data",
    threads: int | None = None,
) -> ImageCache:
    """Decode every image into RAM, or into ``.npy`` files (reusing current ones).

    cache_dir: disk cache root (None: ``$DETFORGE_CACHE`` or ``~/.cache/detforge``). The size
    is logged before decoding; ``DataError`` if it does not fit in RAM (90% of the available
    memory) or on the disk.
    """
    if mode not in ("ram", "disk"):
        raise ValueError(f"cache mode must be 'ram' or 'disk', got {mode!r}")
    if len(paths) != len(infos):
        raise ValueError(f"{len(paths)} paths but {len(infos)} image infos")
    threads = threads or min(8, os.cpu_count() or 1)
    nbytes = cache_nbytes(infos)
    if mode == "ram":
        _LOGGER.info("%s: caching %d images in RAM: %s", split, len(paths), _human(nbytes))
        _check_ram(nbytes, split)
        with ThreadPoolExecutor(threads, thread_name_prefix="detforge-cache") as ex:
            arrays = list(ex.map(_decode, paths, infos))
        for a in arrays:
            a.flags.writeable = False
        return ImageCache("ram", paths, infos, arrays=arrays, nbytes=nbytes)

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    files = [disk_cache_file(p, root) for p in paths]
    todo = [i for i, f in enumerate(files) if not _npy_matches(f, _expected_shape(infos[i]))]
    need = cache_nbytes([infos[i] for i in todo])
    _LOGGER.info(
        "%s: disk image cache in %s: %s for %d images (%d to write: %s)",
        split, root / "images", _human(nbytes), len(paths), len(todo), _human(need),
    )  # fmt: skip
    if todo:
        (root / "images").mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root / "images").free
        if need > free:
            raise DataError(
                f"{split}: cache=disk needs {_human(need)} in {root / 'images'} but only "
                f"{_human(free)} is free; free space, set data.cache_dir or use cache=none"
            )

        def write(i: int) -> None:
            # temp file + rename: a reader never sees half a file. No fsync: a file lost in a
            # crash is only a cache miss (the header check above rejects a damaged one)
            img = _decode(paths[i], infos[i])
            tmp = files[i].with_name(f".{files[i].stem}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as f:
                    np.save(f, img, allow_pickle=False)
                os.replace(tmp, files[i])
            finally:
                tmp.unlink(missing_ok=True)

        with ThreadPoolExecutor(threads, thread_name_prefix="detforge-cache") as ex:
            list(ex.map(write, todo))
    return ImageCache("disk", paths, infos, files=files, nbytes=nbytes, written=len(todo))


def cache_images(
    dataset: Any,
    mode: Literal["none", "ram", "disk"],
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageCache | None:
    """Build the cache of a ``YoloDataset`` and attach it (``mode='none'``: detach, None).

    Call before the dataset's loader starts its workers, so forked workers share a RAM cache.
    """
    if mode == "none":
        dataset.set_image_cache(None)
        return None
    # the header facts come from validation (or the label cache): nothing is decoded twice
    cache = build_image_cache(
        dataset.image_files, dataset._info, mode, cache_dir=cache_dir, split=dataset.split
    )
    dataset.set_image_cache(cache)
    return cache
