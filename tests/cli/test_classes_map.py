"""Weights scored on data with other classes: an error naming both lists, or classes_map=."""

import json

import pytest
import torch
import yaml

from detforge.cli import main
from detforge.config import ConfigError
from detforge.models.classmap import ClassRemap, check_same_classes, parse_classes_map


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_same_classes_names_both_lists():
    check_same_classes(["a", "b"], "weights w.pt", ["a", "b"], "data d.yaml")
    with pytest.raises(ConfigError) as e:
        check_same_classes(["a", "b"], "weights w.pt", ["b", "a"], "data d.yaml")
    assert "weights w.pt has classes [a, b]" in str(e.value)
    assert "data d.yaml has [b, a]" in str(e.value)


def test_parse_classes_map_by_name_and_index():
    sources = parse_classes_map("car:vehicle, truck:vehicle,0:person", ["person", "car", "truck"],
                                ["person", "vehicle", "bike"])  # fmt: skip
    assert sources == [[0], [1, 2], []]
    for bad, needle in [
        ("car", "WEIGHTS_CLASS:DATA_CLASS"),
        ("plane:vehicle", "'plane' is not a class of the weights"),
        ("car:boat", "'boat' is not a class of the data"),
        ("car:vehicle,1:person", "mapped twice"),
        (",", "maps no class"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            parse_classes_map(bad, ["person", "car", "truck"], ["person", "vehicle", "bike"])


class _Fixed(torch.nn.Module):
    """Two levels of raw maps with reg_max 1: 4 box channels, then 3 class logits."""

    reg_max, strides, max_stride = 1, (8, 16), 32

    def forward(self, x):
        return [torch.arange(7.0).view(1, 7, 1, 1).expand(1, 7, 2, 2) + k for k in (0, 10)]


def test_class_remap_selects_merges_and_blanks_channels():
    out = ClassRemap(_Fixed(), [[2], [0, 1], []])(torch.zeros(1))
    assert len(out) == 2 and out[0].shape == (1, 4 + 3, 2, 2)
    for level, k in zip(out, (0, 10), strict=True):
        v = level[0, :, 0, 0]
        assert v[:4].tolist() == [k + 0, k + 1, k + 2, k + 3]  # box logits untouched
        assert v[4].item() == k + 6  # data class 0 <- weights class 2
        assert v[5].item() == k + 5  # data class 1 <- max of weights classes 0 and 1
        assert v[6].item() == float("-inf")  # nothing maps to data class 2


def test_val_on_other_classes_is_an_error_unless_mapped(capsys, tiny_args, tiny_data, tmp_path):
    code, _, err = _run(capsys, "train", *tiny_args, "epochs=1")
    assert code == 0, err
    weights = tmp_path / "runs" / "train" / "weights" / "best.pt"
    args = ["workers=0", "train.progress=false", f"project={tmp_path / 'runs'}"]
    code, _, err = _run(capsys, "val", f"weights={weights}", *args)
    assert code == 0, err
    plain = json.loads((tmp_path / "runs" / "val" / "metrics.json").read_text())["stats"]

    spec = yaml.safe_load(tiny_data.read_text())
    names = spec["names"]
    names = list(names.values()) if isinstance(names, dict) else list(names)
    renamed = [f"x{n}" for n in names]
    spec["names"] = renamed
    spec["path"] = str((tiny_data.parent / spec.get("path", ".")).resolve())
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(spec))

    code, _, err = _run(capsys, "val", f"weights={weights}", f"data={other}", *args)
    assert code == 2
    assert f"has classes [{', '.join(names)}]" in err and f"[{', '.join(renamed)}]" in err
    assert "classes_map=" in err and "Traceback" not in err

    mapping = ",".join(f"{n}:x{n}" for n in names)
    code, _, err = _run(
        capsys, "val", f"weights={weights}", f"data={other}", f"classes_map={mapping}", *args
    )
    assert code == 0, err
    mapped = json.loads((tmp_path / "runs" / "val2" / "metrics.json").read_text())
    assert mapped["stats"] == plain  # the identity mapping scores exactly as the plain run
    assert mapped["classes_map"] == mapping


def test_ensemble_of_weights_with_other_classes_is_an_error():
    from detforge.api import Detector
    from detforge.models.factory import build_model

    a = Detector(build_model("yolo-n", 2), ["cat", "dog"], 64, "cpu")
    b = Detector(build_model("yolo-n", 2), ["dog", "cat"], 64, "cpu")
    with pytest.raises(ConfigError, match=r"\[dog, cat\].*\[cat, dog\]"):
        a.add_ensemble_member(b)


class _FixedAnchors(torch.nn.Module):
    """One level, 2 anchors, 3 weight classes: per anchor x, y, w, h, obj, then class logits."""

    reg_max, strides, max_stride = 0, (8,), 32
    anchors = torch.ones(1, 2, 2)

    def forward(self, x):
        return [torch.arange(16.0).view(1, 16, 1, 1)]


def test_class_remap_of_an_anchor_head_maps_each_anchor_s_classes():
    (level,) = ClassRemap(_FixedAnchors(), [[2], [0, 1], []])(torch.zeros(1))
    assert level.shape == (1, 2 * (5 + 3), 1, 1)
    v = level[0, :, 0, 0].view(2, 8)
    for a, base in enumerate((0, 8)):
        assert v[a, :5].tolist() == [base + i for i in range(5)]  # box and objectness untouched
        assert v[a, 5].item() == base + 7  # data class 0 <- weights class 2
        assert v[a, 6].item() == base + 6  # data class 1 <- max of weights classes 0 and 1
        assert v[a, 7].item() == float("-inf")
