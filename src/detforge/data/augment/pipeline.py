"""The training chain: mosaic (4 or 9 images on a 2 * size canvas, ``mosaic.py``) -> random
perspective to (size, size) (``perspective.py``) -> copy-paste -> mixup with a second image that
went through the same three steps (``mix.py``) -> albumentations (``albument.py``) -> HSV ->
flips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detforge.data.augment.albument import build_albumentations
from detforge.data.augment.core import AugmentParams, Compose, TileSource, Transform
from detforge.data.augment.flip import RandomFlip
from detforge.data.augment.hsv import RandomHSV
from detforge.data.augment.mix import CopyPaste, MixUp
from detforge.data.augment.mosaic import Mosaic
from detforge.data.augment.perspective import RandomPerspective

__all__ = ["build_train_transforms"]


def build_train_transforms(
    size: int,
    params: AugmentParams,
    source: TileSource | None = None,
    pad_value: int = 114,
    albumentations: Sequence[Mapping[str, Any]] = (),
) -> Compose:
    """The training chain for (size, size) outputs.

    source: where mosaic and mixup take their other images (``YoloDataset``: ``len`` and
    ``load_tile(index) -> (img, labels)``); None leaves mosaic and mixup out. The input sample is
    one image whose long side is ``size`` (a "tile"). albumentations: the config's list of
    ``{name: ..., p: ..., **kwargs}`` (needs the optional package; see ``albument.py``).

    HSV runs on the output canvas, whose size is bounded, rather than on a source image of any
    size; the padding is jittered with the image, which carries no information either way.
    """
    mosaic = None
    if source is not None and params.mosaic > 0:
        mosaic = Mosaic(source, size, params.mosaic, params.mosaic9, pad_value)
    # the perspective places the mosaic itself and draws only the part of it that it shows
    geometric: list[Transform] = [RandomPerspective(size, params, pad_value, mosaic=mosaic)]
    if params.copy_paste > 0:
        geometric.append(CopyPaste(params.copy_paste, params.copy_paste_ioa))
    chain = list(geometric)
    if source is not None and params.mixup > 0:
        chain.append(MixUp(source, Compose(geometric), params.mixup, params.mixup_beta))
    extra = build_albumentations(albumentations, params, pad_value)
    if extra is not None:
        chain.append(extra)
    chain += [
        RandomHSV(params.hsv_h, params.hsv_s, params.hsv_v),
        RandomFlip(params.fliplr, horizontal=True),
        RandomFlip(params.flipud, horizontal=False),
    ]
    return Compose(chain)
