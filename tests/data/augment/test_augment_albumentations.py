"""The optional albumentations pipeline: errors that name ``augment.albumentations[i]`` (checked
with a stand-in module, so they run without the package), and with the real package when it is
installed: boxes follow spatial transforms, crops cut and drop boxes per min_visible, runs are
reproducible, gray stays one channel."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from detforge.data.augment.albument import build_albumentations
from detforge.data.augment.core import AugmentParams
from detforge.data.errors import DataConfigError


@pytest.fixture
def fake_albumentations(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A minimal stand-in: BasicTransform, Blur (blur_limit must be >= 3), BboxParams, Compose."""
    mod = types.ModuleType("albumentations")

    class BasicTransform:
        def __init__(self, p: float = 0.5) -> None:
            self.p = p

    class Blur(BasicTransform):
        def __init__(self, blur_limit: int = 3, p: float = 0.5) -> None:
            if blur_limit < 3:
                raise ValueError("blur_limit must be >= 3")
            super().__init__(p)

    class BboxParams:
        def __init__(self, **kw) -> None:
            self.kw = kw

    class Compose:
        def __init__(self, transforms, bbox_params=None) -> None:
            self.transforms, self.bbox_params = transforms, bbox_params

        def set_random_seed(self, seed: int) -> None:
            self.seed = seed

    for obj in (BasicTransform, Blur, BboxParams, Compose):
        setattr(mod, obj.__name__, obj)
    monkeypatch.setitem(sys.modules, "albumentations", mod)
    return mod


def test_missing_package_is_an_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "albumentations", None)  # makes the import fail
    with pytest.raises(DataConfigError, match=r"augment\.albumentations.*not installed") as e:
        build_albumentations([{"name": "Blur", "p": 0.1}])
    assert "detforge[albumentations]" in str(e.value)
    assert build_albumentations([]) is None  # an empty list never needs the package


def test_unknown_transform_bad_arguments_and_bad_entries(fake_albumentations) -> None:
    with pytest.raises(
        DataConfigError,
        match=r"augment\.albumentations\[1\]: unknown .*'Blurr' \(did you mean Blur",
    ):
        build_albumentations([{"name": "Blur"}, {"name": "Blurr"}])
    with pytest.raises(DataConfigError, match=r"augment\.albumentations\[0\]: Blur.*blur_limit"):
        build_albumentations([{"name": "Blur", "blur_limit": 1}])
    with pytest.raises(
        DataConfigError,
        match=r"augment\.albumentations\[0\]: Blur has no argument 'radius' "
        r"\(it takes \['blur_limit', 'p'\]\)",
    ):
        build_albumentations([{"name": "Blur", "radius": 2}])
    with pytest.raises(DataConfigError, match=r"augment\.albumentations\[0\]: expected a mapping"):
        build_albumentations([{"p": 0.1}])
    t = build_albumentations([{"name": "Blur", "p": 0.2}], AugmentParams(min_visible=0.3))
    bbox = t.compose.bbox_params.kw
    assert bbox["format"] == "pascal_voc" and bbox["min_visibility"] == 0.3
    del fake_albumentations.Compose.set_random_seed  # as in albumentations 1.x
    with pytest.raises(DataConfigError, match=r"augment\.albumentations: .*too old"):
        build_albumentations([{"name": "Blur"}])


def rect_sample(gray: bool = False) -> dict:
    img = np.zeros((160, 200) if gray else (160, 200, 3), np.uint8)
    img[30:120, 20:100] = 255
    return {"img": img, "labels": np.array([[2, 20, 30, 100, 120]], np.float32)}


def drawn_box(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((img if img.ndim == 2 else img.max(axis=2)) > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_real_package_moves_boxes_and_is_reproducible() -> None:
    pytest.importorskip("albumentations")
    t = build_albumentations(
        [{"name": "HorizontalFlip", "p": 1.0}, {"name": "Blur", "p": 1.0, "blur_limit": 3}]
    )
    out = t(rect_sample(), np.random.default_rng(0))
    np.testing.assert_allclose(out["labels"], [[2, 100, 30, 180, 120]], atol=1e-4)
    np.testing.assert_allclose(drawn_box(out["img"]), out["labels"][0, 1:], atol=1.0)
    again = t(rect_sample(), np.random.default_rng(0))
    np.testing.assert_array_equal(out["img"], again["img"])
    gray = t(rect_sample(gray=True), np.random.default_rng(0))
    assert gray["img"].shape == (160, 200)


def test_real_package_misspelt_argument_is_an_error() -> None:
    pytest.importorskip("albumentations")  # the package itself only warns, then ignores it
    with pytest.raises(
        DataConfigError,
        match=r"augment\.albumentations\[1\]: Blur has no argument 'blur_limt' "
        r"\(did you mean 'blur_limit'\?\)",
    ):
        build_albumentations(
            [{"name": "HorizontalFlip", "p": 0.5}, {"name": "Blur", "p": 0.1, "blur_limt": 5}]
        )
    assert build_albumentations([{"name": "Blur", "p": 0.1, "blur_limit": 5, "strict": True}])


@pytest.mark.parametrize(("min_visible", "kept"), [(0.4, True), (0.6, False)])
def test_real_package_crop_cuts_boxes_per_min_visible(min_visible: float, kept: bool) -> None:
    pytest.importorskip("albumentations")
    crop = [{"name": "Crop", "x_min": 0, "y_min": 0, "x_max": 60, "y_max": 160}]
    t = build_albumentations(crop, AugmentParams(min_visible=min_visible), pad_value=0)
    out = t(rect_sample(), np.random.default_rng(0))  # half of the box is cut away
    # the 60 x 160 crop is fitted back into 200 x 160: centred, 70 px of padding on the left
    assert out["img"].shape[:2] == (160, 200)
    assert (len(out["labels"]) == 1) is kept
    if kept:
        np.testing.assert_allclose(out["labels"][0, 1:], [90, 30, 130, 120], atol=1e-4)
        np.testing.assert_allclose(drawn_box(out["img"]), out["labels"][0, 1:], atol=1e-4)


def test_real_package_in_the_dataset_chain(tmp_path: Path) -> None:
    pytest.importorskip("albumentations")
    from PIL import Image

    from detforge.data import YoloDataset

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(rect_sample()["img"]).save(tmp_path / "images/a.png")
    (tmp_path / "labels/a.txt").write_text("0 0.3 0.46875 0.4 0.5625\n")
    ds = YoloDataset(
        tmp_path / "images", ["x"], imgsz=64, augment=True, cache_dir=tmp_path / "c",
        albumentations=[{"name": "ToGray", "p": 1.0}],
    )  # fmt: skip
    assert "AlbumentationsTransform" in repr(ds.transforms)
    assert ds[0]["img"].shape == (3, 64, 64)
