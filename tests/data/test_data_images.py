"""Image decoding: EXIF orientation, gray, RGBA, 16-bit (detforge.data.images)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from detforge.data import DataError, read_image, verify_image
from detforge.data.images import probe_image


def _quadrants(w: int = 40, h: int = 20) -> np.ndarray:
    """(h, w, 3) with red top-left, green top-right, blue bottom-left, white bottom-right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 255)
    return a


def _save_with_orientation(path: Path, arr: np.ndarray, orientation: int, **kw) -> Path:
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif.tobytes(), **kw)
    return path


def test_exif_rotated_jpeg(tmp_path: Path) -> None:
    # orientation 6: the stored pixels must be turned 90 degrees clockwise for display
    path = _save_with_orientation(tmp_path / "rot.jpg", _quadrants(), 6, quality=95)
    img = read_image(path)
    assert img.shape == (40, 20, 3) and img.dtype == np.uint8
    # after a clockwise turn the stored bottom-left (blue) is at the top-left
    np.testing.assert_allclose(img[2, 2], (0, 0, 255), atol=40)
    np.testing.assert_allclose(img[2, 17], (255, 0, 0), atol=40)
    np.testing.assert_allclose(img[37, 2], (255, 255, 255), atol=40)
    info = verify_image(path)
    assert info.shape == (40, 20) and info.orientation == 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pil(tmp_path: Path, orientation: int) -> None:
    path = _save_with_orientation(tmp_path / "o.png", _quadrants(), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    img = read_image(path)
    np.testing.assert_array_equal(img, expected)
    assert verify_image(path).shape == img.shape[:2]


def test_grayscale_to_rgb(tmp_path: Path, write_image) -> None:
    path = write_image(tmp_path / "g.png", 30, 20, mode="L", value=77)
    img = read_image(path)
    assert img.shape == (20, 30, 3) and (img == 77).all()
    gray = read_image(path, keep_gray=True)
    assert gray.shape == (20, 30) and (gray == 77).all()
    assert probe_image(path).gray


def test_keep_gray_leaves_colour_images_alone(tmp_path: Path, write_image) -> None:
    path = write_image(tmp_path / "c.jpg", 30, 20, value=(200, 10, 10))
    assert read_image(path, keep_gray=True).shape == (20, 30, 3)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    a = np.zeros((10, 12, 4), np.uint8)
    a[..., 0], a[..., 1], a[..., 2], a[:, :6, 3] = 200, 100, 50, 255
    path = tmp_path / "a.png"
    Image.fromarray(a, "RGBA").save(path)
    img = read_image(path)
    assert img.shape == (10, 12, 3) and (img == (200, 100, 50)).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_scaled_to_8bit(tmp_path: Path, channels: int) -> None:
    a = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    if channels == 3:
        a = np.stack([a, a // 2, a // 4], axis=-1)
    path = tmp_path / "d.png"
    cv2.imwrite(str(path), a)  # cv2 writes true 16-bit PNGs (BGR order for colour)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (20, 30, 3)
    ref = (a >> 8).astype(np.uint8)
    ref = ref[..., ::-1] if channels == 3 else np.repeat(ref[..., None], 3, axis=2)
    np.testing.assert_allclose(img.astype(int), ref.astype(int), atol=1)


def test_bmp_tiff_webp(tmp_path: Path, write_image) -> None:
    for ext in ("bmp", "tif", "webp"):
        path = write_image(tmp_path / f"x.{ext}", 16, 8, value=(10, 200, 30), **(
            {"lossless": True} if ext == "webp" else {}
        ))  # fmt: skip
        img = read_image(path)
        assert img.shape == (8, 16, 3) and tuple(img[0, 0]) == (10, 200, 30), ext


def test_undecodable_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(DataError, match="bad.jpg"):
        verify_image(bad)
    with pytest.raises(DataError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(DataError, match="image not found"):
        verify_image(tmp_path / "none.jpg")


@pytest.mark.parametrize(("name", "orientation"), [("o.jpg", 6), ("o.jpg", 3), ("o.png", 1)])
def test_decode_rgb_fast_path_agrees_with_read_image(tmp_path: Path, name, orientation) -> None:
    from detforge.data.images import decode_rgb

    path = _save_with_orientation(tmp_path / name, _quadrants(), orientation, quality=95)
    np.testing.assert_array_equal(decode_rgb(path), read_image(path))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="bad.png: cannot decode image"):
        decode_rgb(tmp_path / "bad.png")
