"""decode() reads channels-last and contiguous maps alike and gives, bit for bit, what the
transposed-view decoding with a matrix-vector DFL expectation gave."""

from __future__ import annotations

import pytest
import torch

from detforge.models.decode import (
    decode,
    distance_to_box,
    flatten_outputs,
    make_anchors,
)


def _reference(outputs, strides, reg_max):
    points, stride_col = make_anchors(outputs, strides)
    box_logits, cls_logits = flatten_outputs(outputs, reg_max)
    b, n, _ = box_logits.shape
    prob = box_logits.reshape(b, n, 4, reg_max).float().softmax(-1)
    dist = prob @ torch.arange(reg_max, dtype=prob.dtype)
    boxes = distance_to_box(points, dist) * stride_col
    return boxes, cls_logits.float().sigmoid()


@pytest.mark.parametrize("channels_last", [False, True])
def test_decode_equals_the_transposed_view_decoding(channels_last):
    g = torch.Generator().manual_seed(0)
    reg_max, nc, strides = 16, 5, (8, 16, 32)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    outputs = [
        (torch.randn(2, 4 * reg_max + nc, 64 // s, 96 // s, generator=g) * 4).contiguous(
            memory_format=fmt
        )
        for s in strides
    ]
    boxes, scores = decode(outputs, strides, reg_max)
    want_boxes, want_scores = _reference(outputs, strides, reg_max)
    assert boxes.shape == (2, sum(64 // s * 96 // s for s in strides), 4)
    assert scores.shape == (2, boxes.shape[1], nc)
    assert torch.equal(boxes, want_boxes) and torch.equal(scores, want_scores)
