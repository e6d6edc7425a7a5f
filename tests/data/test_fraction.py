"""data.fraction: a deterministic, class-stratified subset of the training images that keeps
every class."""

from __future__ import annotations

import numpy as np

from detforge.config import load_config
from detforge.data.datayaml import load_data_yaml
from detforge.data.fraction import stratified_fraction
from detforge.engine.setup_data import build_train_set


def _labels(classes_per_image: list[list[int]]) -> list[np.ndarray]:
    return [
        np.array([[c, 0.5, 0.5, 0.1, 0.1] for c in cs], np.float32).reshape(-1, 5)
        for cs in classes_per_image
    ]


def test_fraction_is_deterministic_and_keeps_every_class():
    # 100 images: class 0 common, class 1 in 10 images, class 2 in exactly one image that also
    # holds class 0, and 20 background images
    rows = [[0]] * 69 + [[1, 0]] * 10 + [[0, 2]] + [[]] * 20
    labels = _labels(rows)
    for seed in range(5):
        a = stratified_fraction(labels, 3, 0.2, seed=seed)
        assert np.array_equal(a, stratified_fraction(labels, 3, 0.2, seed=seed))
        assert np.all(np.diff(a) > 0)  # sorted, no repeats
        present = {c for i in a for c in rows[i]}
        assert present == {0, 1, 2}, (seed, present)
        assert 19 <= len(a) <= 22  # ~20%, plus at most one image per missed class
        # stratified: ~20% of the class-1 images and of the background images
        assert sum(1 for i in a if 1 in rows[i]) == 2
        assert sum(1 for i in a if not rows[i]) == 4
    seeds = {tuple(stratified_fraction(labels, 3, 0.2, seed=s)) for s in range(5)}
    assert len(seeds) > 1  # the seed picks the images


def test_a_class_that_is_never_the_rarest_is_kept():
    # class 2 is in one image only, beside class 1, which is rarer by boxes: that image is filed
    # under class 1, and the draw of 2 of the 10 class-1 images would usually miss it
    rows = [[1]] * 9 + [[1] + [2] * 20] + [[0]] * 30
    labels = _labels(rows)
    for seed in range(10):
        a = stratified_fraction(labels, 3, 0.2, seed=seed)
        assert 9 in a, seed
        assert {c for i in a for c in rows[i]} == {0, 1, 2}


def test_fraction_one_keeps_all():
    labels = _labels([[0], [1], []])
    assert stratified_fraction(labels, 2, 1.0).tolist() == [0, 1, 2]


def test_training_set_uses_the_fraction(tiny_data, tmp_path):
    base = [f"data={tiny_data}", "imgsz=64", f"data.cache_dir={tmp_path}"]
    spec = load_data_yaml(tiny_data)
    full = build_train_set(load_config(base), spec)
    half = build_train_set(load_config([*base, "data.fraction=0.5"]), spec)
    again = build_train_set(load_config([*base, "data.fraction=0.5"]), spec)
    assert len(half) < len(full)
    assert half.image_files == again.image_files
    assert set(half.image_files) <= set(full.image_files)
    classes = lambda ds: {int(c) for lab in ds.labels for c in lab[:, 0]}  # noqa: E731
    assert classes(half) == classes(full)
    assert len(half[0]["img"].shape) == 3  # samples (mosaic tiles too) come from the subset
