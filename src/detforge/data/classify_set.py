"""Classification samples and batches: decode, torchvision v2 augmentation, mixup/cutmix.

Every random choice is a pure function of (seed, epoch, image index): each sample is augmented
with torch's CPU generator seeded from those three numbers (and restored after), and
mixup/cutmix of a batch from its indices. So a run gives the same batches with any number of
loader workers, and a resumed run the same ones it would have had. Images are decoded by OpenCV
alone (``images.decode_rgb``: RGB, EXIF orientation applied, no separate header read).

Training (``augment=True``): random resized crop to ``imgsz`` (area fraction ``scale``, aspect
3/4-4/3), horizontal flip ``fliplr``, vertical flip ``flipud``, colour jitter (brightness
``hsv_v``, saturation ``hsv_s``, hue ``hsv_h``), then ``auto_augment`` (``randaugment`` or
``trivialaugment``; none by default). Validation: the shorter side resized to ``imgsz`` and
the centre ``imgsz`` square cropped. Images stay uint8 (B, 3, H, W); the model normalises.

Mixup (``mixup`` = probability per batch, Beta(1, 1) mixing) and cutmix (``cutmix``, same)
make soft targets ``(B, C)``; otherwise targets are class indices ``(B,)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .imagefolder import ClassifySplit
from .images import decode_rgb

__all__ = ["ClassifyAugment", "ClassifyDataset", "ClassifyCollate"]


@dataclass(frozen=True)
class ClassifyAugment:
    scale: tuple[float, float] = (0.35, 1.0)
    fliplr: float = 0.5
    flipud: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.4
    hsv_v: float = 0.4
    auto_augment: str | None = None  # randaugment | trivialaugment
    mixup: float = 0.0
    cutmix: float = 0.0

    def __post_init__(self) -> None:
        if self.auto_augment not in (None, "randaugment", "trivialaugment"):
            got = self.auto_augment
            raise ValueError(
                f"auto_augment must be randaugment, trivialaugment or null, got {got!r}"
            )
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must be 0 < min <= max <= 1, got {self.scale}")


def _seed(*parts: int) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def build_transforms(imgsz: int, augment: ClassifyAugment | None):
    """torchvision v2 pipeline on a uint8 (3, H, W) tensor."""
    from torchvision.transforms import v2

    if augment is None:
        return v2.Compose([v2.Resize(imgsz, antialias=True), v2.CenterCrop(imgsz)])
    a = augment
    steps = [v2.RandomResizedCrop(imgsz, scale=a.scale, antialias=True)]
    if a.fliplr:
        steps.append(v2.RandomHorizontalFlip(a.fliplr))
    if a.flipud:
        steps.append(v2.RandomVerticalFlip(a.flipud))
    if a.hsv_v or a.hsv_s or a.hsv_h:
        steps.append(v2.ColorJitter(brightness=a.hsv_v, saturation=a.hsv_s, hue=a.hsv_h))
    if a.auto_augment == "randaugment":
        steps.append(v2.RandAugment())
    elif a.auto_augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)


class ClassifyDataset(Dataset):
    """Samples ``{"img": uint8 (3, S, S), "cls": int, "index": int}`` of a :class:`ClassifySplit`.

    ``dataset[i]`` or ``dataset[(i, epoch)]`` (the detection loader's index-epoch sampler);
    ``set_epoch`` sets the epoch used by plain indices.
    """

    def __init__(self, split: ClassifySplit, imgsz: int, augment: ClassifyAugment | None = None,
                 seed: int = 0, cache: bool = False):  # fmt: skip
        self.split, self.imgsz, self.augment, self.seed = split, imgsz, augment, seed
        self.labels = list(split.labels)
        self.transforms = build_transforms(imgsz, augment)
        self.epoch = 0
        self._cache: dict[int, Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def image(self, index: int) -> Tensor:
        """The decoded image ``index``: uint8 (3, H, W) RGB."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        img = torch.from_numpy(decode_rgb(self.split.files[index])).permute(2, 0, 1).contiguous()
        if self._cache is not None:
            self._cache[index] = img
        return img

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = item if isinstance(item, tuple) else (item, self.epoch)
        tensor = self.image(index)
        # the transforms draw from torch's default CPU generator: seed it for this sample and put
        # the caller's state back (torch.manual_seed and fork_rng cost ~0.5 ms more per sample)
        gen = torch.default_generator
        state = gen.get_state()
        gen.manual_seed(_seed(self.seed, epoch, index))
        try:
            out = self.transforms(tensor)
        finally:
            gen.set_state(state)
        return {"img": out.contiguous(), "cls": self.labels[index], "index": index,
                "epoch": epoch}  # fmt: skip


class ClassifyCollate:
    """Stack samples into ``{"img": (B, 3, S, S) uint8, "cls": (B,) int64 or (B, C) float}``;
    with mixup/cutmix, each batch is mixed with probability ``mixup`` / ``cutmix`` (one of
    them, cutmix first) and its targets become soft."""

    def __init__(self, num_classes: int, augment: ClassifyAugment | None = None, seed: int = 0):
        self.nc, self.augment, self.seed = num_classes, augment, seed

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        img = torch.stack([b["img"] for b in batch])
        cls = torch.tensor([b["cls"] for b in batch], dtype=torch.int64)
        indices = [b["index"] for b in batch]
        a = self.augment
        if a is not None and (a.mixup or a.cutmix) and len(batch) > 1:
            gen = torch.Generator().manual_seed(_seed(self.seed, batch[0]["epoch"], *indices))
            pick = torch.rand(2, generator=gen)
            if pick[0] < a.cutmix:
                img, cls = self._cutmix(img, cls, gen)
            elif pick[1] < a.mixup:
                img, cls = self._mixup(img, cls, gen)
        return {"img": img, "cls": cls, "indices": indices}

    def _soft(self, cls: Tensor, perm: Tensor, lam: float) -> Tensor:
        onehot = torch.nn.functional.one_hot(cls, self.nc).float()
        return lam * onehot + (1 - lam) * onehot[perm]

    def _mixup(self, img, cls, gen):
        lam = float(torch.rand(1, generator=gen))  # Beta(1, 1) is uniform
        perm = torch.randperm(len(cls), generator=gen)
        mixed = lam * img.float() + (1 - lam) * img[perm].float()
        return mixed.round().clamp(0, 255).to(torch.uint8), self._soft(cls, perm, lam)

    def _cutmix(self, img, cls, gen):
        lam = float(torch.rand(1, generator=gen))
        perm = torch.randperm(len(cls), generator=gen)
        h, w = img.shape[-2:]
        ch, cw = int(round(h * (1 - lam) ** 0.5)), int(round(w * (1 - lam) ** 0.5))
        cy, cx = (int(torch.randint(0, n, (1,), generator=gen)) for n in (h, w))
        y1, y2 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x1, x2 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        img = img.clone()
        img[:, :, y1:y2, x1:x2] = img[perm][:, :, y1:y2, x1:x2]
        lam = 1 - (y2 - y1) * (x2 - x1) / (h * w)  # the area actually pasted
        return img, self._soft(cls, perm, lam)
