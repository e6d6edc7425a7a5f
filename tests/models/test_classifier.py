"""Classifiers: sizes, logits, parameter names per part, normalisation inside the model, and
pretrained weights only on request with a clear offline error."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from detforge.models.classifier import build_classifier


@pytest.mark.parametrize(("name", "params"), [("cnn-s", 4_953_252), ("efficientnet_b0", 4_012_672)])
def test_size_logits_and_part_names(name, params):
    model = build_classifier(name, 4).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    parts = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert parts == {"backbone", "head"}


def test_normalisation_is_part_of_the_model_and_its_state():
    model = build_classifier("efficientnet_b0", 3).eval()
    state = model.state_dict()
    torch.testing.assert_close(
        state["normalize.mean"].flatten(), torch.tensor([0.485, 0.456, 0.406])
    )
    x = torch.ones(1, 3, 8, 8)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(model.normalize(x)[0, :, 0, 0], expected)
    ours = build_classifier("cnn-s", 3)
    torch.testing.assert_close(ours.normalize(x), torch.ones_like(x))


def test_pretrained_weights_offline_name_the_file_and_the_folder(tmp_path, monkeypatch):
    from torchvision.models import EfficientNet_B0_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(EfficientNet_B0_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(
        FileNotFoundError, match=r"efficientnet_b0_rwightman-.*\.pth are not in the cache"
    ):
        build_classifier("efficientnet_b0", 4, weights="imagenet")


def test_bad_names_and_weights_are_refused():
    with pytest.raises(ValueError, match="unknown classifier 'cnn-x'"):
        build_classifier("cnn-x", 4)
    with pytest.raises(ValueError, match="cnn-s has no pretrained weights"):
        build_classifier("cnn-s", 4, weights="imagenet")
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_classifier("cnn-s", 1)
