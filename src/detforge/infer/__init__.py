"""Inference: devices and mixed precision, post-processing (NMS, rescale), test-time
augmentation and ensembles, and running a model over a loader."""
