"""Class-balanced image weights and the weighted epoch sampler."""

from __future__ import annotations

import numpy as np
import pytest

from detforge.data.sampling import WeightedEpochSampler, class_counts, image_weights


def _lab(*classes: int) -> np.ndarray:
    out = np.zeros((len(classes), 5), np.float32)
    out[:, 0] = classes
    out[:, 1:] = 0.5
    return out


# class 0: 8 boxes, class 1: 2 boxes, class 2: none
LABELS = [_lab(0, 0), _lab(0, 0), _lab(0, 0, 1), _lab(1, 0), _lab(0), _lab()]


def test_class_counts_and_range_error() -> None:
    assert class_counts(LABELS, 3).tolist() == [8, 2, 0]
    with pytest.raises(ValueError, match="image 1: class id out of range"):
        class_counts([_lab(0), _lab(3)], 3)


def test_rarest_weights() -> None:
    w = image_weights(LABELS, 3, "rarest")
    raw = np.array([1 / 8, 1 / 8, 1 / 2, 1 / 2, 1 / 8, 1 / 8])  # empty image: the minimum
    np.testing.assert_allclose(w, raw * len(raw) / raw.sum())
    assert w.mean() == pytest.approx(1.0)


def test_inverse_frequency_weights() -> None:
    w = image_weights(LABELS, 3, "inverse_frequency")
    raw = np.array([1 / 8, 1 / 8, (2 / 8 + 1 / 2) / 3, (1 / 2 + 1 / 8) / 2, 1 / 8, 1 / 8])
    np.testing.assert_allclose(w, raw * len(raw) / raw.sum())


def test_power_and_edge_cases() -> None:
    np.testing.assert_allclose(image_weights(LABELS, 3, power=0.0), np.ones(6))
    soft = image_weights(LABELS, 3, power=0.5)
    assert soft[2] / soft[0] == pytest.approx(2.0)  # sqrt(8 / 2)
    np.testing.assert_allclose(image_weights([_lab(), _lab()], 2), [1.0, 1.0])
    assert image_weights([], 2).shape == (0,)
    with pytest.raises(ValueError, match="weighting"):
        image_weights(LABELS, 3, "sqrt")  # type: ignore[arg-type]


def test_rare_images_drawn_in_proportion() -> None:
    w = image_weights(LABELS, 3, "rarest")
    s = WeightedEpochSampler(w, seed=3)
    draws = []
    for e in range(3000):
        s.set_epoch(e)
        draws += s.order()
    freq = np.bincount(draws, minlength=6) / len(draws)
    p = w / w.sum()
    sigma = np.sqrt(p * (1 - p) / len(draws))
    assert (np.abs(freq - p) < 4 * sigma).all(), (freq, p)
    # the two images holding the rare class get 4x the draws of a common-class image
    assert freq[2] / freq[0] == pytest.approx(4.0, rel=0.1)


def test_deterministic_by_seed_and_epoch() -> None:
    w = np.arange(1, 51, dtype=float)
    a, b = WeightedEpochSampler(w, seed=1), WeightedEpochSampler(w, seed=1)
    a.set_epoch(5)
    b.set_epoch(2)
    b.order()
    b.set_epoch(5)  # history does not matter
    assert a.order() == b.order() and len(a.order()) == 50
    c = WeightedEpochSampler(w, seed=2)
    c.set_epoch(5)
    assert c.order() != a.order()
    a.set_epoch(6)
    assert a.order() != b.order()


def test_resume_skips_and_shards() -> None:
    w = np.linspace(0.1, 1.0, 11)
    s = WeightedEpochSampler(w, seed=0)
    s.set_epoch(3)
    full = s.order()
    s.resume_at(3, 4)
    assert list(s) == full[4:] and len(s) == 7
    s.set_epoch(4)  # other epochs are whole
    assert len(list(s)) == len(s) == 11

    ranks = [WeightedEpochSampler(w, seed=0, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(3)
    parts = [r.order() for r in ranks]
    assert [len(p) for p in parts] == [4, 4, 4]  # ceil(11 / 3), padded
    merged = [parts[i % 3][i // 3] for i in range(11)]
    assert merged == full  # ranks read disjoint positions of the same draw


def test_bad_weights_rejected() -> None:
    for bad in ([0.0, 0.0], [1.0, -1.0], [1.0, np.nan], []):
        with pytest.raises(ValueError):
            WeightedEpochSampler(bad)
    with pytest.raises(ValueError, match="rank"):
        WeightedEpochSampler([1.0], rank=1, world_size=1)


def test_loader_reads_the_weighted_draw(yolo_root, cache_dir) -> None:
    from detforge.data import YoloDataset, build_dataloader, load_data_yaml

    ds = YoloDataset.from_spec(load_data_yaml(yolo_root / "data.yaml"), "train", imgsz=64,
                               augment=True, cache_dir=cache_dir)  # fmt: skip
    sampler = WeightedEpochSampler(image_weights(ds.labels, 2), seed=4)
    loader = build_dataloader(ds, 2, shuffle=True, workers=0, seed=4, sampler=sampler)
    ds.set_epoch(2)
    ids = [i for b in loader for i in b["image_ids"]]
    sampler.set_epoch(2)
    assert ids == sampler.order() and len(ids) == len(ds) == 3
    sampler.resume_at(2, 2)  # resume after the first batch of epoch 2
    assert [i for b in loader for i in b["image_ids"]] == ids[2:]
