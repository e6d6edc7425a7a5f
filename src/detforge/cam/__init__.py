"""Attention maps: where a model looks, overlaid on the image (``detforge cam``).

EigenCAM and Grad-CAM come from the ``grad-cam`` package (pytorch-grad-cam, MIT; the ``[cam]``
extra): its methods take any module as the layer and any callable on the model's output as the
target, so a detector needs only :class:`~detforge.cam.targets.DetectionScores` (the model as
(B, N, K) per-anchor class scores) and :class:`~detforge.cam.targets.DetectionScore` (one
anchor's score of one class); a classifier needs only
:class:`~detforge.cam.classify.ClassLogit` (one class's logit), with the same layer lookup.
"""
