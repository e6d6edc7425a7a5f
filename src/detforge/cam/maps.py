"""EigenCAM and Grad-CAM maps over a batch of letterboxed images, through pytorch-grad-cam.

Maps are (B, H, W) float32 in [0, 1] at the input's size: per layer, negative values cut to 0
and each map scaled by its own min and max (pytorch-grad-cam's convention), then averaged over
layers and scaled again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..config.fields import ConfigError

__all__ = ["METHODS", "eigen_cam", "grad_cam", "check_layer_outputs"]

METHODS = ("eigencam", "gradcam")


def _grad_cam_package():
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils import svd_on_activations
    except ImportError as e:
        raise ConfigError(
            "cam: attention maps need the grad-cam package: pip install 'detforge[cam]'"
        ) from e
    return pytorch_grad_cam, svd_on_activations


def check_layer_outputs(
    model: nn.Module, layers: Sequence[nn.Module], names: Sequence[str], x: Tensor
) -> Tensor:
    """Run ``model(x)`` once without gradients and check that every layer gives a (B, C, h, w)
    tensor (a map per channel); returns the model's output. A module that returns a list (a
    whole backbone or neck) is named in the error."""
    seen: dict[int, object] = {}
    handles = [
        layer.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
        for k, layer in enumerate(layers)
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    for k, name in enumerate(names):
        o = seen.get(k)
        if not isinstance(o, Tensor) or o.ndim != 4:
            what = "was not called" if k not in seen else f"gives {type(o).__name__}"
            shape = f" of shape {tuple(o.shape)}" if isinstance(o, Tensor) else ""
            raise ConfigError(
                f"cam: layer '{name}' {what}{shape}; name a module whose output is one "
                "(B, C, H, W) feature map, e.g. a stage inside the neck"
            )
    return out


def eigen_cam(model: nn.Module, layers: Sequence[nn.Module], x: Tensor) -> np.ndarray:
    """Gradient-free: each layer's activations (C, h, w) projected on their first principal
    component (centred SVD over the h*w positions), the sign chosen so the larger extreme is
    positive (an SVD's sign is arbitrary; without this the map can come out inverted).

    x: (B, 3, H, W) -> (B, H, W) in [0, 1].
    """
    gc, svd = _grad_cam_package()

    # pytorch-grad-cam's context manager swallows IndexError, so hooks are released by hand

    class SignedEigenCAM(gc.EigenCAM):
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads,
                          eigen_smooth):  # fmt: skip
            return svd.get_2d_projection_with_sign_correction(activations)

    cam = SignedEigenCAM(model, list(layers))
    try:
        with torch.no_grad():
            return cam(x, targets=[])
    finally:
        cam.activations_and_grads.release()


def grad_cam(
    model: nn.Module,
    layers: Sequence[nn.Module],
    x: Tensor,
    targets: Sequence[Callable[[Tensor], Tensor]],
) -> np.ndarray:
    """Grad-CAM: each layer's channels weighted by the mean gradient of a target, summed; one
    map per target. ``model(x)`` gives one output per image; a target is called on one image's
    output (a detector's (N, K) scores -> one anchor's score, see
    :class:`~detforge.cam.targets.DetectionScore`).

    x: (1, 3, H, W) -> (len(targets), H, W) in [0, 1]; the image is repeated, one per target.
    """
    gc, _ = _grad_cam_package()
    cam = gc.GradCAM(model, list(layers))
    try:
        with torch.enable_grad():
            batch = x.expand(len(targets), -1, -1, -1).contiguous()
            return cam(batch, targets=list(targets))
    finally:
        cam.activations_and_grads.release()
