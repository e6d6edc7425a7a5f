"""Label cache: validated labels, image shapes and messages of a split, stored outside the data.

One ``.npz`` file per list of image paths (and class count) in ``<cache_dir>/labels/``; it holds a
fingerprint of every image and label file, so any change to them re-validates: the content hash of
each label file up to ``LABEL_HASH_LIMIT`` bytes (an edit that keeps size and mtime, as a tool
restoring timestamps or two writes within the file system's mtime granularity make, is still
seen), and size, ``st_mtime_ns``, inode and ``st_ctime_ns`` of images and of larger label files
(``os.utime`` cannot set ctime back, so a restored mtime alone does not hide an edit). Label files
are small, so hashing them costs one read each; images are never read. Files are written to a
temporary name and moved into place with ``os.replace`` (readers never see half a file); a cache
that cannot be read is ignored. The format needs no pickle (``allow_pickle=False``), so a tampered
cache cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from detforge.data.datayaml import ImageEntry, label_path_for
from detforge.data.validate import ImageRecord

__all__ = ["default_cache_dir", "cache_path", "fingerprint", "load_cache", "save_cache"]

# 2: new fingerprint, and labels of files starting with a byte-order mark are read right (a
# version-1 cache holds them without their first box)
CACHE_VERSION = 2
LABEL_HASH_LIMIT = 1 << 16  # bytes; ~2000 boxes, far above a usual label file
_LOGGER = logging.getLogger("detforge.data")


def default_cache_dir() -> Path:
    """``$DETFORGE_CACHE`` if set, else ``~/.cache/detforge``."""
    env = os.environ.get("DETFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "detforge"


def cache_path(
    cache_dir: str | os.PathLike[str] | None, entries: list[ImageEntry], nc: int
) -> Path:
    """Cache file for this list of images and class count."""
    h = hashlib.sha256(f"v{CACHE_VERSION} nc={nc}\n".encode())
    for e in entries:
        h.update(os.fsencode(e.path))
        h.update(b"\n")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "labels" / f"{h.hexdigest()[:32]}.npz"


def _stat_stamp(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _image_stamp(path: str | os.PathLike[str]) -> str:
    try:
        return _stat_stamp(os.stat(path))
    except OSError:
        return "-"


def _label_stamp(path: str | os.PathLike[str]) -> str:
    """``size:content hash`` of a label file up to LABEL_HASH_LIMIT bytes, else its stat stamp."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > LABEL_HASH_LIMIT:
                return _stat_stamp(st)
            data = f.read()
    except FileNotFoundError:
        return "-"
    except OSError as e:  # a folder or an unreadable file: validation reports it
        return f"error {e.errno}"
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=16).hexdigest()}"


def fingerprint(entries: list[ImageEntry]) -> str:
    """Hash of the path and stamp of every image and its label file (see the module doc)."""
    h = hashlib.sha256()
    for e in entries:
        lab = label_path_for(e.path)
        h.update(f"{e.path}|{_image_stamp(e.path)}|{lab}|{_label_stamp(lab)}|{e.where}\n".encode())
    return h.hexdigest()


def save_cache(path: Path, fp: str, records: list[ImageRecord]) -> bool:
    """Write records atomically; return False (and log) if the cache folder is not writable."""
    counts = np.array([len(r.labels) for r in records], np.int64)
    labels = (
        np.concatenate([r.labels for r in records]) if records else np.zeros((0, 5), np.float32)
    )
    text = json.dumps(
        {
            "paths": [r.path for r in records],
            "skip": [r.skip for r in records],
            "messages": [r.messages for r in records],
        }
    )
    arrays = {
        "version": np.array(CACHE_VERSION),
        "fingerprint": np.array(fp),
        "shapes": np.array([r.shape for r in records], np.int64).reshape(-1, 2),
        "orientation": np.array([r.orientation for r in records], np.int8),
        "gray": np.array([r.gray for r in records], np.bool_),
        "counts": counts,
        "labels": labels.astype(np.float32).reshape(-1, 5),
        "text": np.array(text),
    }
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except OSError as e:
        _LOGGER.warning("label cache not written (%s): %s", path, e)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        return False


def load_cache(path: Path, fp: str, n: int) -> list[ImageRecord] | None:
    """Records from a cache file if it exists, is readable, current and holds ``n`` images."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != fp:
                return None
            shapes, orient, gray = z["shapes"], z["orientation"], z["gray"]
            counts, labels = z["counts"], z["labels"]
            meta = json.loads(str(z["text"]))
        if not (len(shapes) == len(counts) == len(gray) == len(meta["paths"]) == n):
            return None
        if int(counts.sum()) != len(labels):
            return None
        chunks = np.split(labels, np.cumsum(counts)[:-1]) if n else []
        return [
            ImageRecord(
                path=meta["paths"][i],
                shape=(int(shapes[i, 0]), int(shapes[i, 1])),
                orientation=int(orient[i]),
                gray=bool(gray[i]),
                labels=np.ascontiguousarray(chunks[i], dtype=np.float32),
                messages=list(meta["messages"][i]),
                skip=meta["skip"][i],
            )
            for i in range(n)
        ]
    except Exception as e:  # any corruption: fall back to re-validation
        _LOGGER.warning("ignoring unreadable label cache %s: %s", path, e)
        return None
