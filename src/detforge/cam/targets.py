"""What an attention map explains: the model's output as a tensor per image, a target on it,
and the layer whose activations make the map.

Detectors return per-level raw maps; :class:`DetectionScores` turns them into the pre-NMS class
scores of every anchor, (B, N, K), so a target is an index into one image's (N, K) scores.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import Tensor, nn

from ..config.fields import ConfigError
from ..models.decode import decode
from ..models.yolo import PANNeck

__all__ = ["DetectionScores", "DetectionScore", "find_layers", "neck_output_layers"]


class DetectionScores(nn.Module):
    """A detector seen as its class probabilities per anchor: (B, 3, H, W) -> (B, N, K), anchors
    in :func:`~detforge.models.decode.decode` order (levels ascending, row-major)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.detector(x)
        return decode(outputs, self.detector.strides, self.detector.reg_max)[1]


class DetectionScore:
    """Grad-CAM target: the pre-NMS probability of class ``cls`` at anchor ``anchor``, the score
    behind one detection. Called on one image's scores (N, K)."""

    def __init__(self, anchor: int, cls: int):
        self.anchor, self.cls = int(anchor), int(cls)

    def __call__(self, scores: Tensor) -> Tensor:
        return scores[self.anchor, self.cls]


def find_layers(model: nn.Module, names: list[str], valid: Sequence[str] = ()) -> list[nn.Module]:
    """The modules of ``model`` named as in ``model.named_modules()``; an unknown name is an
    error listing ``valid`` (the model's stages with a spatial output, when given) and the
    nearest names."""
    modules = dict(model.named_modules())
    found = []
    for name in names:
        if name not in modules:
            near = difflib.get_close_matches(name, [n for n in modules if n], n=6, cutoff=0.3)
            hint = f"; stages with a (B, C, H, W) output: {', '.join(valid)}" if valid else ""
            hint += f"; nearest: {', '.join(near)}" if near else ""
            raise ConfigError(f"cam: layer '{name}' is not a module of this model{hint}")
        found.append(modules[name])
    return found


def neck_output_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs the head reads, one per detection level (ascending
    stride): the neck's last stage at each level."""
    neck = getattr(model, "neck", None)
    if not isinstance(neck, PANNeck):
        raise ConfigError(
            "cam: this model's neck has no default layer; name one with layer= "
            "(a module of model.named_modules())"
        )
    return [f"neck.td.{k}" if k == neck.low else f"neck.bu.{k}" for k in neck.levels]
