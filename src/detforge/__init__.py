"""detforge: train, tune, evaluate and diagnose YOLO-style detectors.

``detforge.train(...)``, ``detforge.Detector`` and ``detforge.Hook`` are loaded on first use,
so importing the package is cheap and does not import torch.
"""

__version__ = "0.1.0"
__all__ = ["Detector", "Hook", "Prediction", "train", "__version__"]


def __getattr__(name: str):
    if name == "Hook":
        from .engine.hooks import Hook

        return Hook
    if name in ("Detector", "Prediction", "train"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'detforge' has no attribute {name!r}")
