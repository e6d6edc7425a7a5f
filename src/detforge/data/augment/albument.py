"""Optional per-image albumentations pipeline, named in the config.

``augment.albumentations: [{name: Blur, p: 0.1, blur_limit: 3}, {name: CLAHE, p: 0.05}]`` builds
``albumentations.Compose`` of those transforms (each ``name`` is a class of the package, the other
keys its arguments; an argument it does not take is an error, never ignored) with bbox handling in
``pascal_voc`` format (pixel xyxy), so spatial transforms move the boxes too. The package is
optional (``pip install 'detforge[albumentations]'``); it is imported only when the list is not
empty, and every problem raises ``DataConfigError`` naming ``augment.albumentations[i]``.

Determinism: before each image the pipeline's own generator is seeded from the sample's
generator, so the result is still a pure function of (seed, epoch, index). Boxes that a crop or
rotation cuts below ``min_visible`` of their area are dropped by albumentations
(``min_visibility``); the others are clipped and filtered by the same size rules as elsewhere.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from detforge.data.augment.core import AugmentParams, Sample, box_visible, clip_boxes
from detforge.data.errors import DataConfigError

__all__ = ["AlbumentationsTransform", "build_albumentations"]

_KEY = "augment.albumentations"


def _import_albumentations() -> Any:
    try:
        import albumentations
    except ImportError as e:
        raise DataConfigError(
            f"{_KEY}: the 'albumentations' package is not installed "
            f"(pip install 'detforge[albumentations]'), or leave {_KEY} empty: {e}"
        ) from e
    if not hasattr(albumentations.Compose, "set_random_seed"):
        # per-sample seeding (our determinism) arrived with albumentations 2.0
        raise DataConfigError(
            f"{_KEY}: albumentations {getattr(albumentations, '__version__', '?')} is too old; "
            "version 2.0 or newer is needed (pip install 'detforge[albumentations]')"
        )
    return albumentations


def _transform_classes(alb: Any) -> dict[str, type]:
    base = alb.BasicTransform
    return {
        n: c for n in dir(alb) if isinstance(c := getattr(alb, n), type) and issubclass(c, base)
    }


def _check_arguments(cls: type, name: str, kwargs: Mapping[str, Any], where: str) -> None:
    """Raise naming the transform and the first argument it does not take (albumentations
    itself only warns about one, and that warning would be lost)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # takes anything: nothing to check against
    schema = getattr(getattr(cls, "InitSchema", None), "model_fields", {})
    accepted = {k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    accepted |= set(schema)
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"it takes {sorted(accepted)}"
            raise DataConfigError(f"{where}: {name} has no argument '{key}' ({hint})")


def build_albumentations(
    specs: Sequence[Mapping[str, Any]], params: AugmentParams | None = None, pad_value: int = 114
) -> AlbumentationsTransform | None:
    """Build the pipeline from config entries ``{name: ..., **kwargs}``; None when empty.

    params: the box rules (min_visible goes to albumentations' min_visibility); pad_value: the
    padding when an image that a transform resized or cropped is fitted back to its size.
    """
    if not specs:
        return None
    alb = _import_albumentations()
    known = _transform_classes(alb)
    transforms = []
    for i, spec in enumerate(specs):
        where = f"{_KEY}[{i}]"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise DataConfigError(f"{where}: expected a mapping with a 'name' key, got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        cls = known.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise DataConfigError(f"{where}: unknown albumentations transform '{name}'{hint}")
        _check_arguments(cls, name, kwargs, where)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transforms.append(cls(**kwargs))
        except Exception as e:  # the package validates arguments with its own error types
            raise DataConfigError(f"{where}: {name}({kwargs}): {e}") from e
    params = params or AugmentParams()
    bbox = alb.BboxParams(
        format="pascal_voc", label_fields=["cls", "index"], clip=True,
        min_visibility=params.min_visible,
    )  # fmt: skip
    with warnings.catch_warnings():
        # pixel-only pipelines make albumentations warn that the boxes are not processed
        warnings.simplefilter("ignore")
        compose = alb.Compose(transforms, bbox_params=bbox)
    return AlbumentationsTransform(compose, params, pad_value)


def _fit_back(
    img: np.ndarray, boxes: np.ndarray, h: int, w: int, pad_value: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scale (H', W'[, 3]) to fit (h, w), centred and padded; boxes (n, 4) follow."""
    r = min(h / img.shape[0], w / img.shape[1])
    nw, nh = max(1, round(img.shape[1] * r)), max(1, round(img.shape[0] * r))
    if (nh, nw) != img.shape[:2]:
        boxes = boxes * np.array([nw / img.shape[1], nh / img.shape[0]] * 2, np.float32)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (h - nh) // 2, (w - nw) // 2
    img = cv2.copyMakeBorder(
        img, top, h - nh - top, left, w - nw - left, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
    )
    return img, boxes + np.array([left, top, left, top], np.float32)


class AlbumentationsTransform:
    """Apply an ``albumentations.Compose`` to a sample; gray images stay (H, W).

    An image whose size a transform changed (a crop, a resize) is fitted back into the input
    size, letterbox-style, so batches keep one shape.
    """

    def __init__(self, compose: Any, params: AugmentParams, pad_value: int = 114) -> None:
        self.compose, self.p, self.pad_value = compose, params, pad_value

    def __repr__(self) -> str:
        names = [type(t).__name__ for t in self.compose.transforms]
        return f"AlbumentationsTransform({names})"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        self.compose.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        labels = sample["labels"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.compose(
                image=sample["img"],
                bboxes=labels[:, 1:5].astype(np.float32),
                cls=labels[:, 0],
                index=np.arange(len(labels)),
            )
        img = out["image"]
        index = np.asarray(out["index"], dtype=int)
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        h, w = sample["img"].shape[:2]
        if img.shape[:2] != (h, w):
            img, boxes = _fit_back(img, boxes, h, w, self.pad_value)
        # albumentations itself drops boxes cut below min_visible (its min_visibility); the size
        # rules are ours
        boxes, keep, visible = clip_boxes(boxes, w, h, self.p, box_visible(sample)[index])
        cls = np.asarray(out["cls"], np.float32).reshape(-1, 1)
        sample["img"] = np.ascontiguousarray(img)
        sample["labels"] = np.concatenate([cls, boxes], axis=1)[keep].astype(np.float32)
        sample["visible"] = visible[keep]
        return sample
