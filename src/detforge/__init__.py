"""detforge: train, tune, evaluate and diagnose YOLO-style detectors."""
__version__ = "0.1.0"
