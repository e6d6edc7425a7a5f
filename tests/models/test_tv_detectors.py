"""torchvision's detectors as a detforge family: the real architectures build without any
download, with detforge's part names, normalisation and resize; labels map to torchvision's
convention and back; ImageNet weights are fetched only on request, offline a clear error."""

import pytest
import torch

from detforge.config import families
from detforge.engine.checkpoint import build_checkpoint, model_from_checkpoint
from detforge.models import tv_detectors
from detforge.models.catalog import model_rows
from detforge.models.norm import IMAGENET_MEAN, IMAGENET_STD
from detforge.models.tv_detectors import (
    TORCHVISION_DETECTORS,
    TorchvisionDetector,
    TVDetectorSpec,
    build_tv_detector,
)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_the_config_layer_knows_the_same_family():
    assert families.TORCHVISION_DETECTORS == tuple(TORCHVISION_DETECTORS)
    assert families.TV_SCORE_FLOOR == tv_detectors.SCORE_FLOOR
    assert families.TV_MAX_CANDIDATES == tv_detectors.MAX_CANDIDATES


@pytest.mark.parametrize("name", list(TORCHVISION_DETECTORS))
def test_real_architecture_builds_offline_with_detforge_parts(name):
    model = build_tv_detector(name, 3, 64)
    params = [n for n, _ in model.named_parameters()]
    assert params and all(n.split(".")[0] in ("backbone", "neck", "head") for n in params)
    assert {n.split(".")[0] for n in params} == {"backbone", "neck", "head"}
    state = model.state_dict()
    torch.testing.assert_close(state["normalize.mean"].flatten(), torch.tensor(IMAGENET_MEAN))
    torch.testing.assert_close(state["normalize.std"].flatten(), torch.tensor(IMAGENET_STD))
    t = model.tv_model.transform
    assert (t.min_size, t.max_size) == ((64,), 64)  # imgsz, not torchvision's 800
    # torchvision's final NMS is off: detforge's (eval.iou / predict.iou) is the only one
    final = model.head["roi_heads"] if "fasterrcnn" in name else model.tv_model
    assert final.nms_thresh == 1.0 and final.score_thresh == tv_detectors.SCORE_FLOOR
    assert final.detections_per_img == tv_detectors.MAX_CANDIDATES
    # the parts detforge names are the modules torchvision runs
    assert model.backbone is model.tv_model.backbone.body
    assert model.neck is model.tv_model.backbone.fpn
    model.eval()
    with torch.no_grad():
        boxes, scores = model(torch.rand(2, 3, 64, 64))
    assert boxes.shape[0] == 2 and boxes.shape[2] == 4 and scores.shape[2] == 3
    assert boxes.shape[1] == scores.shape[1]
    # every row holds at most one class score (zeros elsewhere)
    assert ((scores > 0).sum(-1) <= 1).all()


def test_class_count_follows_torchvision_label_convention():
    with torch.device("meta"):
        frcnn = TorchvisionDetector(TVDetectorSpec("fasterrcnn-r50-fpn", 64), 5)
        retina = TorchvisionDetector(TVDetectorSpec("retinanet-r50-fpn", 64), 5)
        fcos = TorchvisionDetector(TVDetectorSpec("fcos-r50-fpn", 64), 5)
    # Faster R-CNN's class 0 is the background; RetinaNet and FCOS have none
    assert frcnn.head["roi_heads"].box_predictor.cls_score.out_features == 6
    assert retina.head.classification_head.num_classes == 5
    assert fcos.head.classification_head.num_classes == 5
    assert (frcnn.label_offset, retina.label_offset, fcos.label_offset) == (1, 0, 0)


@pytest.mark.parametrize(("name", "offset"), [("fasterrcnn-mobilenet", 1), ("fcos-r50-fpn", 0)])
def test_labels_round_trip_between_detforge_and_torchvision(name, offset):
    with torch.device("meta"):
        model = TorchvisionDetector(TVDetectorSpec(name, 64), 3)
    targets = torch.tensor(
        [
            [0, 2, 1.0, 2.0, 11.0, 12.0],
            [0, 0, 5.0, 5.0, 5.0, 9.0],  # no width: torchvision refuses it, left out
            [2, 1, 3.0, 4.0, 30.0, 40.0],
        ]
    )
    tv = model.targets_from_batch(targets, 3)
    assert [t["labels"].tolist() for t in tv] == [[2 + offset], [], [1 + offset]]
    torch.testing.assert_close(tv[0]["boxes"], torch.tensor([[1.0, 2.0, 11.0, 12.0]]))
    assert tv[1]["boxes"].shape == (0, 4)
    # torchvision's predictions with those labels come back as detforge's classes
    dets = [
        {"boxes": t["boxes"], "scores": torch.full((len(t["labels"]),), 0.9),
         "labels": t["labels"]}
        for t in tv
    ]  # fmt: skip
    boxes, scores = model.pack(dets, 3)
    assert boxes.shape == (3, 1, 4) and scores.shape == (3, 1, 3)
    assert scores[0, 0].tolist() == pytest.approx([0, 0, 0.9])
    assert scores[2, 0].tolist() == pytest.approx([0, 0.9, 0])
    assert scores[1].sum() == 0  # an image without detections is padding only
    torch.testing.assert_close(boxes[2, 0], torch.tensor([3.0, 4.0, 30.0, 40.0]))


def test_imagenet_weights_only_on_request_and_offline_error_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as e:
        build_tv_detector("fasterrcnn-mobilenet", 2, 64, "imagenet")
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert "mobilenet_v3_large-8738ca79.pth" in str(e.value) and str(folder) in str(e.value)
    with pytest.raises(ValueError, match="model.backbone_weights"):
        build_tv_detector("fasterrcnn-mobilenet", 2, 64, "my.pt")


def test_listing_rows_give_the_real_model_size_and_the_cache_state(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (row,) = model_rows(["fasterrcnn-mobilenet"], 640)
    real = build_tv_detector("fasterrcnn-mobilenet", 80, 640)
    assert row.kind == "torchvision"
    assert row.params == sum(p.numel() for p in real.parameters())
    assert row.gflops > 1.0
    assert row.pretrained.startswith("imagenet backbone: not cached (mobilenet_v3_large-")
    assert "coco: not cached (fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth; put it in" in (
        row.pretrained
    )
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "mobilenet_v3_large-8738ca79.pth").write_bytes(b"")  # presence is what counts
    (row,) = model_rows(["fasterrcnn-mobilenet"], 640)
    assert row.pretrained.startswith(
        f"imagenet backbone: cached ({folder}/mobilenet_v3_large-8738ca79.pth); coco: not cached"
    )


@pytest.mark.parametrize("name", ["fasterrcnn-mobilenet", "retinanet-r50-fpn"])
def test_boxes_are_decoded_in_fp32_under_bf16_autocast(name):
    """bf16 keeps 8 bits of mantissa: boxes decoded in it would move by pixels."""
    model = build_tv_detector(name, 3, 64).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        boxes, scores = model(torch.rand(1, 3, 64, 64))
    assert boxes.dtype == torch.float32 and scores.dtype == torch.float32


def test_imagenet_backbone_comes_from_torchvision_cache_fully_trainable(monkeypatch, tmp_path):
    from torchvision.models import mobilenet_v3_large
    from torchvision.ops.misc import FrozenBatchNorm2d

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    reference = mobilenet_v3_large().state_dict()  # stands in for the ImageNet file
    torch.save(reference, folder / "mobilenet_v3_large-8738ca79.pth")
    model = build_tv_detector("fasterrcnn-mobilenet", 2, 64, "imagenet")
    torch.testing.assert_close(model.backbone["0"][0].weight, reference["features.0.0.weight"])
    # torchvision freezes BatchNorm of a pretrained body; which layers train is optim.freeze's
    assert all(p.requires_grad for p in model.parameters())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    # its checkpoint rebuilds the same modules (FrozenBatchNorm2d has other state-dict keys)
    ckpt = build_checkpoint(model, None, ["a", "b"], {}, tmp_path)
    assert ckpt["model_spec"]["frozen_bn"] is True
    reloaded = model_from_checkpoint(ckpt, "test").eval()
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), reloaded(x), strict=True):
            torch.testing.assert_close(a, b)


def test_classes_map_remaps_the_score_columns():
    from detforge.models.classmap import ClassRemap

    model = build_tv_detector("fasterrcnn-mobilenet", 3, 64).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = model(x)
        # data class 0 <- weights classes 0 and 2, data class 1 <- none, data class 2 <- 1
        mapped_boxes, mapped = ClassRemap(model, [[0, 2], [], [1]])(x)
    torch.testing.assert_close(mapped_boxes, boxes)
    torch.testing.assert_close(mapped[..., 0], scores[..., [0, 2]].amax(-1))
    assert (mapped[..., 1] == 0).all()
    torch.testing.assert_close(mapped[..., 2], scores[..., 1])


def test_a_resumed_imagenet_run_builds_frozen_batchnorm_without_the_file(monkeypatch, tmp_path):
    from torchvision.ops.misc import FrozenBatchNorm2d

    from detforge.config import load_config
    from detforge.models.factory import build_model_from_config

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty: no ImageNet file
    cfg = load_config(["model=fasterrcnn-mobilenet", "backbone_weights=imagenet"], env={})
    model = build_model_from_config(cfg.model, 2, 64, pretrained=False)
    assert model.spec.frozen_bn
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())


def test_coco_weights_load_from_the_cache_with_new_class_layers(monkeypatch, tmp_path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"):
        build_tv_detector("fasterrcnn-mobilenet", 2, 64, weights="coco")  # offline, no file
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)  # torch.hub made it for the refused download
    # a 91-class model's state dict stands in for torchvision's COCO file
    coco = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).state_dict()
    torch.save(coco, folder / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")
    model = build_tv_detector("fasterrcnn-mobilenet", 2, 64, weights="coco")
    state = model.state_dict()
    torch.testing.assert_close(state["backbone.0.0.weight"], coco["backbone.body.0.0.weight"])
    torch.testing.assert_close(state["neck.layer_blocks.0.0.weight"],
                               coco["backbone.fpn.layer_blocks.0.0.weight"])  # fmt: skip
    torch.testing.assert_close(state["head.roi_heads.box_head.fc6.weight"],
                               coco["roi_heads.box_head.fc6.weight"])  # fmt: skip
    # the class layers are new, for 2 classes + background
    assert state["head.roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    assert state["head.roi_heads.box_predictor.bbox_pred.weight"].shape[0] == 12
    assert model.spec.frozen_bn and all(p.requires_grad for p in model.parameters())
    # and the checkpoint of such a model rebuilds it
    reloaded = model_from_checkpoint(build_checkpoint(model, None, ["a", "b"], {}, tmp_path), "t")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), reloaded.eval()(x), strict=True):
            torch.testing.assert_close(a, b)


def test_coco_class_layers_of_one_stage_models_keep_torchvision_init():
    from torchvision.models.detection import retinanet_resnet50_fpn

    from detforge.models.tv_build import _new_class_layers

    with torch.device("meta"):
        model = retinanet_resnet50_fpn(weights=None, weights_backbone=None)
    _new_class_layers(model, 4)
    head = model.head.classification_head
    assert head.num_classes == 4 and head.cls_logits.out_channels == 9 * 4
