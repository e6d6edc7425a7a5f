"""Checking that weights and data name the same classes, and mapping one onto the other.

Scoring weights on data whose classes differ gives meaningless metrics (class 0 of the weights
is compared with class 0 of the data whatever they are called), so that is an error naming both
lists, unless the user says how the weights' classes map onto the data's (``classes_map=``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..config import ConfigError

__all__ = ["check_same_classes", "parse_classes_map", "ClassRemap"]


def _fmt(names: Sequence[str]) -> str:
    return "[" + ", ".join(map(str, names)) + "]"


def check_same_classes(
    names_a: Sequence[str], source_a: str, names_b: Sequence[str], source_b: str, hint: str = ""
) -> None:
    """Raise a ConfigError naming both class lists unless they are equal (order included)."""
    if list(names_a) != list(names_b):
        raise ConfigError(
            f"{source_a} has classes {_fmt(names_a)} ({len(names_a)}) but {source_b} has "
            f"{_fmt(names_b)} ({len(names_b)}){hint}"
        )


def _class_index(token: str, names: Sequence[str], side: str, spec: str) -> int:
    token = token.strip()
    if token in names:
        return list(names).index(token)
    if token.isdigit() and int(token) < len(names):
        return int(token)
    raise ConfigError(
        f"classes_map={spec}: '{token}' is not a class of the {side} {_fmt(names)} "
        "(give a class name or index)"
    )


def parse_classes_map(
    spec: str, weight_names: Sequence[str], data_names: Sequence[str]
) -> list[list[int]]:
    """``"car:vehicle,truck:vehicle,person:pedestrian"`` -> for each data class, the weights'
    classes that predict it. Names or indices on either side; weight classes left out are
    dropped from the predictions; a data class nothing maps to is never predicted."""
    sources: list[list[int]] = [[] for _ in data_names]
    seen: set[int] = set()
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        if ":" not in pair:
            raise ConfigError(
                f"classes_map={spec}: '{pair}' is not WEIGHTS_CLASS:DATA_CLASS "
                "(e.g. classes_map=car:vehicle,person:pedestrian)"
            )
        src, dst = pair.split(":", 1)
        i = _class_index(src, weight_names, "weights", spec)
        j = _class_index(dst, data_names, "data", spec)
        if i in seen:
            raise ConfigError(f"classes_map={spec}: weights class '{src.strip()}' is mapped twice")
        seen.add(i)
        sources[j].append(i)
    if not seen:
        raise ConfigError(f"classes_map={spec!r} maps no class")
    return sources


class ClassRemap(nn.Module):
    """Wraps a detector so its class channels are those of another class list.

    Output per level: (B, 4*reg_max + K_data, H, W), or for an anchor head (B, A * (5 + K_data),
    H, W); for a torchvision detector (decoded outputs) boxes (B, D, 4) and scores
    (B, D, K_data). Data class j gets the largest class logit (or score) of the weights' classes
    mapped to it (the sigmoid keeps that order), or -inf (score 0) when none is, so every
    post-processing step sees an ordinary model of K_data classes.
    """

    def __init__(self, model: nn.Module, sources: list[list[int]]):
        super().__init__()
        self.model = model
        self.sources = sources
        self.nc, self.strides = len(sources), model.strides
        # a torchvision detector's outputs are decoded [boxes, scores]: it has no reg_max
        self.decoded = getattr(model, "decoded_outputs", False)
        self.reg_max = 0 if self.decoded else model.reg_max

    @property
    def max_stride(self) -> int:
        return self.model.max_stride

    @property
    def anchors(self) -> Tensor | None:
        return getattr(self.model, "anchors", None)

    def decode(self, outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Boxes and scores of the remapped maps (decoding reads K from the channels)."""
        return self.model.decode(outputs)

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.decoded:  # scores (B, D, K) probabilities: 0 for a class nothing maps to
            boxes, scores = self.model(x)
            zero = scores.new_zeros((*scores.shape[:-1], 1))
            mapped = [scores[..., s].amax(-1, keepdim=True) if s else zero for s in self.sources]
            return [boxes, torch.cat(mapped, -1)]
        anchors = self.anchors
        na = 1 if anchors is None else anchors.shape[1]
        box_ch = 4 * self.reg_max if anchors is None else 5  # box (+ objectness) channels
        out = []
        for level in self.model(x):
            b, c, h, w = level.shape
            v = level.view(b, na, c // na, h, w)
            box, cls = v[:, :, :box_ch], v[:, :, box_ch:]
            empty = torch.full_like(cls[:, :, :1], float("-inf"))
            mapped = [
                cls[:, :, src].amax(2, keepdim=True) if src else empty for src in self.sources
            ]
            out.append(torch.cat([box, *mapped], 2).reshape(b, -1, h, w))
        return out
