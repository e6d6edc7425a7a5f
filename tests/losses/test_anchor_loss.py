"""The anchor head's loss: each gain scales exactly its own term, empty images, builder."""

import pytest
import torch

from detforge.config import ConfigError, load_config
from detforge.losses.anchor import AnchorLoss, build_anchor_loss_from_config
from detforge.losses.factory import build_loss_for_model
from detforge.models import build_model

STRIDES = (8, 16, 32)
ANCHORS = torch.tensor(
    [
        [[10, 13], [16, 30], [33, 23]],
        [[30, 61], [62, 45], [59, 119]],
        [[116, 90], [156, 198], [373, 326]],
    ],
    dtype=torch.float32,
)
K = 3


def outputs(seed=0, b=2, size=64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3 * (5 + K), size // s, size // s, generator=g) for s in STRIDES]


TARGETS = torch.tensor([[0, 1, 10, 12, 30, 40], [0, 2, 5, 5, 20, 15], [1, 0, 20, 20, 60, 50]])


def test_each_gain_scales_exactly_its_own_term():
    out = outputs()
    base = AnchorLoss(K, STRIDES, ANCHORS, 1.0, 1.0, 1.0)(out, TARGETS)
    assert set(base) == {"coord", "conf", "class"}
    assert all(float(v) > 0 for v in base.values())
    for name, gains in [("coord", (3.0, 1, 1)), ("conf", (1, 3.0, 1)), ("class", (1, 1, 3.0))]:
        terms = AnchorLoss(K, STRIDES, ANCHORS, *gains)(out, TARGETS)
        for k in base:
            want = base[k] * (3.0 if k == name else 1.0)
            torch.testing.assert_close(terms[k], want, msg=f"gain of {name} moved {k}")


def test_image_without_objects_has_only_objectness_loss_and_gradients_flow():
    out = [o.requires_grad_() for o in outputs(b=1)]
    terms = AnchorLoss(K, STRIDES, ANCHORS)(out, torch.zeros(0, 6))
    assert terms["coord"].item() == 0 and terms["class"].item() == 0 and terms["conf"].item() > 0
    sum(terms.values()).backward()
    assert all(o.grad is not None for o in out)


def test_sums_add_up_over_images_for_accumulation():
    """compute() returns sums and the image count: the conf term of two images equals the sum of
    each image's (the mean over anchors is per image)."""
    out = outputs(b=2)
    loss = AnchorLoss(K, STRIDES, ANCHORS)
    both, mass = loss.compute(out, TARGETS)
    assert float(mass) == 2
    first, _ = loss.compute([o[:1] for o in out], TARGETS[TARGETS[:, 0] == 0])
    t1 = TARGETS[TARGETS[:, 0] == 1].clone()
    t1[:, 0] = 0
    second, _ = loss.compute([o[1:] for o in out], t1)
    torch.testing.assert_close(both["conf"], first["conf"] + second["conf"])


def test_coord_and_objectness_targets_by_hand():
    """One 10 x 13 object centred on P3 cell (2, 2): the ratio rule matches P3's three anchors
    (ratios under 4) in that cell only (the centre is mid-cell). With raw outputs 0 but objectness
    logit x = 1, each anchor predicts its own shape at the object's centre: IoU 1, 130/480 and
    130/759. conf = sum over levels of balance x mean of softplus(x) - t x, t the IoU targets."""
    out = [torch.zeros(1, 3 * (5 + K), 64 // s, 64 // s) for s in STRIDES]
    for o in out:
        o.view(1, 3, 5 + K, *o.shape[-2:])[:, :, 4] = 1.0
    target = torch.tensor([[0, 0, 15, 13.5, 25, 26.5]])
    terms = AnchorLoss(K, STRIDES, ANCHORS, 1.0, 1.0, 1.0, iou_kind="iou")(out, target)
    ious = torch.tensor([1.0, 130 / 480, 130 / 759])
    torch.testing.assert_close(terms["coord"], (1 - ious).mean())
    sp = torch.nn.functional.softplus(torch.tensor(1.0))
    want = sum(b * sp for b in (4.0, 1.0, 0.4)) - 4.0 * ious.sum() / (3 * 8 * 8)
    torch.testing.assert_close(terms["conf"], want)


def test_builder_scales_gains_like_yolov5_and_balance_must_fit_levels():
    cfg = load_config(
        ["model=yolov5-n", "loss.coord=0.1", "loss.conf=1.5", "loss.class=0.8", "imgsz=320"],
        env={},
    )
    loss = build_anchor_loss_from_config(cfg, 8, STRIDES, ANCHORS)
    assert loss.gains["coord"] == pytest.approx(0.1)
    assert loss.gains["conf"] == pytest.approx(1.5 * 0.25)
    assert loss.gains["class"] == pytest.approx(0.8 * 8 / 80)
    assert loss.balance == [4.0, 1.0, 0.4]
    assert loss.matcher.mode == "ratio" and loss.matcher.anchor_t == 4.0
    cfg = load_config(["model=yolov5-n", "loss.balance=[1.0, 2.0]"], env={})
    with pytest.raises(ConfigError, match="loss.balance: 2 weights for 3 levels"):
        build_anchor_loss_from_config(cfg, 8, STRIDES, ANCHORS)


def test_loss_follows_the_model_family():
    cfg = load_config(["model=yolov5-n", "assign.anchor=iou_center"], env={})
    model = build_model("yolov5-n", 2)
    loss = build_loss_for_model(cfg, model)
    assert isinstance(loss, AnchorLoss) and loss.matcher.mode == "iou_center"
    torch.testing.assert_close(loss.anchors, model.anchors)
    assert type(
        build_loss_for_model(load_config([], env={}), build_model("yolo-n", 2))
    ).__name__ == ("DetectionLoss")


@pytest.mark.parametrize(
    "args, key",
    [
        (["model=yolov5-n", "loss.dfl=2.0"], "loss.dfl"),
        (["model=yolov5-s-p2", "loss.box=5"], "loss.box"),
        (["model=yolov5-n", "loss.topk=5"], "loss.topk"),
        (["loss.coord=0.1"], "loss.coord"),
        (["model=yolo-s", "anchors=auto"], "model.anchors"),
        (["assign.anchor=iou_center"], "assign.anchor"),
        (["loss.balance=[1, 1, 1]"], "loss.balance"),
    ],
)
def test_settings_of_the_other_family_are_rejected_by_name(args, key):
    with pytest.raises(ConfigError, match=rf"^{key} does not apply to model"):
        load_config(args, env={})


def test_shared_settings_apply_to_both_families():
    for model in ("yolo-n", "yolov5-n"):
        cfg = load_config([f"model={model}", "loss.class=0.7", "loss.cls_loss=focal"], env={})
        assert cfg.loss.cls == 0.7


def test_tuned_recipe_sets_the_anchor_gains():
    cfg = load_config(["recipe=yolov5-tuned"], env={})
    assert (cfg.model.name, cfg.model.anchors) == ("yolov5-n", "auto")
    assert (cfg.loss.coord, cfg.loss.conf, cfg.loss.cls) == (0.1, 1.5, 0.8)


def test_finetune_on_an_anchor_model_points_at_its_anchor_twin():
    # recipe=finetune sets the anchor-free box and DFL gains: refused on yolov5-*, naming the
    # recipe made for it; finetune-yolov5 keeps finetune's optimizer, groups and schedule
    with pytest.raises(ConfigError, match=r"^loss.box does not apply.*recipe=finetune-yolov5"):
        load_config(["recipe=finetune", "model=yolov5-n"], env={})
    base = load_config(["recipe=finetune"], env={})
    cfg = load_config(["recipe=finetune-yolov5", "model=yolov5-s"], env={})
    assert (cfg.optim.name, cfg.optim.lr0, cfg.optim.groups) == (
        base.optim.name, base.optim.lr0, base.optim.groups
    )  # fmt: skip
    assert (cfg.schedule, cfg.early_stop, cfg.clip) == (base.schedule, base.early_stop, base.clip)
    assert (cfg.model.bn_momentum, cfg.model.bn_eps) == (base.model.bn_momentum, base.model.bn_eps)
    assert (cfg.loss.coord, cfg.loss.conf, cfg.loss.cls) == (0.1, 1.5, 0.8)
    assert cfg.loss.box == load_config([], env={}).loss.box  # the anchor-free gains untouched
