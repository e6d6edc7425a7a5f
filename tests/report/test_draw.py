"""The one box drawer: outlines on the last pixel inside the box, one colour or one per box."""

from types import SimpleNamespace

import numpy as np

from detforge.report.draw import class_color, draw_boxes, draw_detections


def near(pixel, color, tol=40):
    """Anti-aliased lines: the outline pixel is close to the colour, not equal."""
    return np.abs(pixel.astype(int) - np.array(color)).max() <= tol


def test_outline_colours_per_box_and_inside_untouched():
    img = np.zeros((60, 80, 3), np.uint8)
    boxes = np.array([[10, 20, 30, 40], [50, 5, 70, 25]], np.float32)
    draw_boxes(img, boxes, [(255, 0, 0), (0, 0, 255)])
    assert near(img[25, 10], (255, 0, 0)) and near(img[25, 29], (255, 0, 0))
    assert near(img[39, 20], (255, 0, 0)) and not img[42, 20].any()  # AA spreads one pixel at most
    assert near(img[15, 69], (0, 0, 255)) and not img[15, 72].any()
    assert not img[30, 20].any()  # inside


def test_predict_images_use_the_class_colours():
    img = np.zeros((100, 120, 3), np.uint8)
    pred = SimpleNamespace(
        boxes=np.array([[10, 40, 60, 90]], np.float32), scores=np.array([0.9]),
        classes=np.array([3]), names=["a", "b", "c", "d"],
    )  # fmt: skip
    out = draw_detections(img, pred)  # BGR
    assert near(out[70, 10][::-1], class_color(3))
    assert out[5:38].any()  # the "d 0.90" label strip above the box
