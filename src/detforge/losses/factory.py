"""The loss of a built model: the anchor head's or the anchor-free head's, from the config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from .anchor import build_anchor_loss_from_config
from .detection import build_loss_from_config

if TYPE_CHECKING:
    import numpy as np

    from ..config.schema import RunConfig

__all__ = ["build_loss_for_model"]


def build_loss_for_model(
    cfg: RunConfig,
    model: nn.Module,
    train_labels: Sequence[np.ndarray] | None = None,
    names: Sequence[str] | None = None,
) -> nn.Module:
    """:class:`~detforge.losses.anchor.AnchorLoss` for a model with anchors (its current ones,
    so call this after ``anchors=auto``), else :class:`~detforge.losses.DetectionLoss`."""
    anchors = getattr(model, "anchors", None)
    if anchors is not None:
        return build_anchor_loss_from_config(
            cfg, model.nc, model.strides, anchors.detach().cpu(), train_labels
        )
    return build_loss_from_config(
        cfg.loss, model.nc, model.strides, model.reg_max, train_labels, names
    )
