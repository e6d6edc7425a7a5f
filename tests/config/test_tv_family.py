"""Settings that do not apply to torchvision's detectors are refused by name when the settings
are loaded; those that do apply are accepted."""

import pytest

from detforge.config import ConfigError, load_config


@pytest.mark.parametrize(
    "args, key",
    [
        (["loss.dfl=2.0"], "loss.dfl"),
        (["loss.box=5"], "loss.box"),
        (["loss.coord=0.1"], "loss.coord"),
        (["loss.cls=0.7"], "loss.cls"),
        (["loss.cls_loss=focal"], "loss.cls_loss"),
        (["loss.label_smoothing=0.1"], "loss.label_smoothing"),
        (["assign.anchor=iou_center"], "assign.anchor"),
        (["anchors=auto"], "model.anchors"),
        (["backbone=resnet18"], "model.backbone"),
        (["model.bn_eps=0.0001"], "model.bn_eps"),
        (["augment.multi_scale=[0.5, 1.5]"], "augment.multi_scale"),
        (
            ["epochs=2", "train.stages=[{epochs: 1, imgsz: 32}, {epochs: 1, imgsz: 64}]"],
            "train.stages",
        ),
        (["eval.augment=true"], "eval.augment"),
        (["recipe=finetune"], "loss.box"),  # its YOLO gains; finetune-torchvision has none
    ],
)
@pytest.mark.parametrize("model", ["fasterrcnn-r50-fpn", "retinanet-r50-fpn"])
def test_settings_of_other_families_are_rejected_by_name(args, key, model):
    with pytest.raises(ConfigError, match=rf"^{key} does not apply to model '{model}'"):
        load_config([f"model={model}", *args], env={})


@pytest.mark.parametrize(
    "args, key",
    [
        (["batch=auto"], "train.batch"),
        (["early_stop.monitor=val/loss"], "early_stop.monitor"),
        (["schedule.name=plateau"], "schedule.monitor"),  # plateau watches val/loss by default
        (["eval.conf=0.0001"], "eval.conf"),
        (["eval.max_det=5000"], "eval.max_det"),
        (["predict.max_det=3001"], "predict.max_det"),
        (["backbone_weights=my.pth"], "model.backbone_weights"),
    ],
)
def test_values_these_models_cannot_honour_are_rejected_by_name(args, key):
    with pytest.raises(ConfigError, match=rf"^{key}"):
        load_config(["model=fcos-r50-fpn", *args], env={})


def test_settings_that_act_are_accepted():
    cfg = load_config(
        [
            "model=fasterrcnn-mobilenet", "recipe=finetune-torchvision",
            "backbone_weights=imagenet", "optim.freeze=[backbone.*]", "optim.unfreeze_at=2",
            "augment.mosaic=0.5", "data.sampler=weighted", "schedule.name=plateau",
            "schedule.monitor=map50_95", "eval.conf=0.01",
        ],
        env={},
    )  # fmt: skip
    assert cfg.model.backbone_weights == "imagenet"
    assert [g["match"] for g in cfg.optim.groups] == ["backbone.*", "neck.*"]
    assert cfg.optim.name == "adamw"


def test_group_patterns_are_checked_against_the_family_parameter_names():
    from detforge.engine.preflight import check_before_data

    ok = ["model=fcos-r50-fpn", "optim.groups=[{match: 'head.*', lr_mult: 2}]"]
    check_before_data(load_config(ok, env={}))
    bad = ["model=fcos-r50-fpn", "optim.groups=[{match: 'rpn.*'}]"]  # Faster R-CNN's part only
    with pytest.raises(ConfigError, match=r"optim.groups\[0\].match"):
        check_before_data(load_config(bad, env={}))


def test_coco_weights_are_for_torchvision_detectors_only():
    cfg = load_config(["model=retinanet-r50-fpn", "weights=coco"], env={})
    assert cfg.model.weights == "coco"
    with pytest.raises(ConfigError, match=r"^model.weights: 'coco'"):
        load_config(["model=yolo-n", "weights=coco"], env={})
    with pytest.raises(ConfigError, match=r"^model.backbone_weights: model.weights=coco"):
        load_config(["model=fcos-r50-fpn", "weights=coco", "backbone_weights=imagenet"], env={})
