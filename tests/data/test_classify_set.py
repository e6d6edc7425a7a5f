"""Classification samples: seeded augmentation (same with any worker count), validation crop,
mixup and cutmix soft targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from detforge.data.classify_set import ClassifyAugment, ClassifyCollate, ClassifyDataset
from detforge.data.imagefolder import load_classify_data


@pytest.fixture
def split(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split_name in ("train", "val"):
        for name in ("cat", "dog"):
            for i in range(4):
                arr = rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)
                path = tmp_path / "d" / split_name / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(path)
    return load_classify_data(tmp_path / "d").splits["train"]


def test_augmentation_is_a_function_of_seed_epoch_and_index(split):
    ds = ClassifyDataset(split, 32, ClassifyAugment(auto_augment="randaugment"), seed=3)
    a, b = ds[(1, 0)]["img"], ds[(1, 0)]["img"]
    assert a.shape == (3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert not torch.equal(a, ds[(1, 1)]["img"])
    other = ClassifyDataset(split, 32, ClassifyAugment(auto_augment="randaugment"), seed=4)
    assert not torch.equal(a, other[(1, 0)]["img"])


def test_batches_do_not_depend_on_the_number_of_workers(split):
    aug = ClassifyAugment(mixup=0.5, cutmix=0.5)
    ds = ClassifyDataset(split, 24, aug, seed=0)

    def batches(workers):
        loader = DataLoader(ds, batch_size=4, num_workers=workers,
                            collate_fn=ClassifyCollate(2, aug, seed=0))  # fmt: skip
        return list(loader)

    for x, y in zip(batches(0), batches(2), strict=True):
        assert torch.equal(x["img"], y["img"]) and torch.equal(x["cls"], y["cls"])


def test_validation_resizes_the_shorter_side_and_crops_the_centre(split):
    ds = ClassifyDataset(split, 20, None)
    img = ds.image(0)  # 40 x 48
    out = ds[0]["img"]
    assert out.shape == (3, 20, 20)
    assert ds[0]["cls"] == 0 and torch.equal(out, ds[0]["img"])
    assert img.shape == (3, 40, 48) and img.dtype == torch.uint8


def test_mixup_targets_weigh_the_pair_as_the_pixels_do():
    img = torch.stack([torch.full((3, 4, 4), 0, dtype=torch.uint8),
                       torch.full((3, 4, 4), 200, dtype=torch.uint8)])  # fmt: skip
    mixed = 0
    for epoch in range(8):
        batch = [{"img": img[i], "cls": i, "index": i, "epoch": epoch} for i in range(2)]
        out = ClassifyCollate(3, ClassifyAugment(mixup=1.0), seed=0)(batch)
        soft = out["cls"]
        assert soft.shape == (2, 3) and torch.allclose(soft.sum(1), torch.ones(2))
        other = float(soft[0, 1])  # weight of the partner's class 1 in sample 0
        assert float(out["img"][0, 0, 0, 0]) == pytest.approx(200 * other, abs=0.5)
        mixed += other > 0
    assert mixed  # some epochs paired the two images


def test_cutmix_target_weight_is_the_pasted_area():
    torch.manual_seed(0)
    img = torch.stack([torch.zeros(3, 16, 16, dtype=torch.uint8),
                       torch.full((3, 16, 16), 255, dtype=torch.uint8)])  # fmt: skip
    for seed in range(6):
        batch = [{"img": img[i], "cls": i, "index": i, "epoch": seed} for i in range(2)]
        out = ClassifyCollate(2, ClassifyAugment(cutmix=1.0), seed=seed)(batch)
        pasted = (out["img"][0, 0] != 0).float().mean()
        assert float(out["cls"][0, 1]) == pytest.approx(float(pasted))


def test_bad_augment_settings_are_named():
    with pytest.raises(ValueError, match="auto_augment"):
        ClassifyAugment(auto_augment="autoaugment")
    with pytest.raises(ValueError, match="scale"):
        ClassifyAugment(scale=(0.0, 1.0))


def test_an_image_that_stops_decoding_is_named(split):
    ds = ClassifyDataset(split, 24, None)
    ds.split.files[0].write_bytes(b"\x89PNG broken")
    from detforge.data.errors import DataError

    with pytest.raises(DataError, match=r"0\.png: cannot decode image"):
        ds[0]
