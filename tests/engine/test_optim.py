"""Optimizers by name, parameter groups (multipliers, no-decay rule), freezing and unfreezing."""

import pytest
import torch
from torch import nn

from detforge.config.fields import ConfigError
from detforge.config.schema import OptimSection
from detforge.engine.freeze import (
    apply_freeze,
    freeze_active,
    freeze_norm_stats,
    name_matches,
    unfreeze,
)
from detforge.engine.optim import (
    build_optimizer,
    build_param_groups,
    describe_param_groups,
    optimizer_kwargs_from_config,
)


class Tiny(nn.Module):
    """backbone (conv, BN) -> neck (conv, BN) -> head (conv with bias)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.SiLU()
        )
        self.neck = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4), nn.SiLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def _tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny()


def _by_name(opt) -> dict:
    return {g["name"]: g for g in opt.param_groups}


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize(
    "name, cls, expect",
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.99), "eps": 1e-7}),
        ("adamw", torch.optim.AdamW, {"betas": (0.9, 0.99), "eps": 1e-7}),
        ("nadam", torch.optim.NAdam, {"betas": (0.9, 0.99), "eps": 1e-7}),
        ("radam", torch.optim.RAdam, {"betas": (0.9, 0.99), "eps": 1e-7}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.95, "eps": 1e-7, "momentum": 0.9}),
    ],
)
def test_optimizer_class_and_hyperparameters(name, cls, expect):
    opt = build_optimizer(
        _tiny(), name, 0.02, momentum=0.9, beta2=0.99, eps=1e-7, rmsprop_alpha=0.95
    )
    assert type(opt) is cls
    for g in opt.param_groups:
        assert g["lr"] == g["initial_lr"] == 0.02
        for k, v in expect.items():
            assert g[k] == v, (name, k)


def test_sgd_nesterov_switch_and_zero_momentum():
    assert (
        build_optimizer(_tiny(), "sgd", 0.01, nesterov=False).param_groups[0]["nesterov"] is False
    )
    # nesterov needs momentum; torch would raise, we fall back to plain SGD
    assert build_optimizer(_tiny(), "sgd", 0.01, momentum=0.0).param_groups[0]["nesterov"] is False


def test_unknown_optimizer_is_a_config_error_with_suggestion():
    with pytest.raises(ConfigError, match=r"optim.name: .*'adamx'.*did you mean 'adam"):
        build_optimizer(_tiny(), "adamx", 0.01)


def test_adamw_decay_is_decoupled_adam_decay_is_l2():
    def step(name):
        p = nn.Parameter(torch.full((1,), 2.0))
        opt = build_optimizer(nn.ParameterList([p]), name, 0.1, momentum=0.9, weight_decay=0.5)
        p.grad = torch.zeros(1)
        opt.step()
        return p.item()

    assert step("adamw") == pytest.approx(2.0 * (1 - 0.1 * 0.5))  # p -= lr * wd * p
    assert step("adam") == pytest.approx(2.0 - 0.1, abs=1e-6)  # grad wd*p, normalised to lr


def test_no_decay_on_norm_and_bias_and_switch_off():
    m = _tiny()
    g = _by_name(build_optimizer(m, "sgd", 0.01, weight_decay=1e-3))
    assert set(g) == {"default/weights", "default/norm", "default/bias"}
    assert g["default/weights"]["weight_decay"] == 1e-3
    assert g["default/norm"]["weight_decay"] == 0 and g["default/bias"]["weight_decay"] == 0
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert _ids(g["default/norm"]["params"]) == {id(b.weight) for b in bns}
    assert _ids(g["default/bias"]["params"]) == {id(b.bias) for b in bns} | {id(m.head.bias)}

    g = _by_name(build_optimizer(m, "sgd", 0.01, weight_decay=1e-3, no_decay_norm_bias=False))
    assert all(x["weight_decay"] == 1e-3 for x in g.values())
    assert set(g) == {"default/weights", "default/norm", "default/bias"}  # kinds kept apart


def test_groups_first_match_wins_multipliers_and_every_parameter_once():
    m = _tiny()
    groups = [
        {"match": "backbone.*", "lr_mult": 0.1, "wd_mult": 2.0},
        {"match": "backbone.1*", "lr_mult": 5.0},  # overlaps group 0 except nothing new -> error
    ]
    with pytest.raises(ConfigError, match=r"optim.groups\[1\].match: .*claimed by an earlier"):
        build_param_groups(m, 0.01, 1e-3, groups=groups)

    groups = [
        {"match": "backbone.1.*", "lr_mult": 5.0, "name": "bb_norm"},
        {"match": "backbone.*", "lr_mult": 0.1, "wd_mult": 2.0},
        {"match": "neck", "lr_mult": 0.5, "wd_mult": 0.0},
    ]
    pg = build_param_groups(m, 0.01, 1e-3, groups=groups)
    g = {x["name"]: x for x in pg}
    assert list(g) == [
        "bb_norm/norm",
        "bb_norm/bias",
        "backbone.*/weights",
        "neck/weights",
        "neck/norm",
        "neck/bias",
        "default/weights",
        "default/bias",
    ]
    # first match wins: the BN of the backbone went to bb_norm, not backbone.*
    assert _ids(g["bb_norm/norm"]["params"]) == {id(m.backbone[1].weight)}
    assert _ids(g["backbone.*/weights"]["params"]) == {id(m.backbone[0].weight)}
    assert g["bb_norm/norm"]["initial_lr"] == pytest.approx(0.05)
    assert g["backbone.*/weights"]["initial_lr"] == pytest.approx(0.001)
    assert g["backbone.*/weights"]["lr_mult"] == 0.1
    assert g["backbone.*/weights"]["weight_decay"] == pytest.approx(2e-3)
    assert g["neck/weights"]["weight_decay"] == 0.0 and g["neck/weights"]["lr"] == 0.005
    assert g["default/weights"]["initial_lr"] == 0.01 and g["default/weights"]["lr_mult"] == 1.0
    ids = [id(p) for x in pg for p in x["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == _ids(m.parameters())


def test_group_pattern_matching_module_prefix():
    assert name_matches("neck", "neck.0.weight") and name_matches("neck.*", "neck.0.weight")
    assert name_matches("*.bias", "head.bias") and not name_matches("neck", "necklace.weight")
    assert not name_matches("Neck", "neck.0.weight")  # case-sensitive on every platform


@pytest.mark.parametrize(
    "groups, message",
    [
        (
            [{"match": "neck.*"}, {"match": "nek.*"}],
            r"optim.groups\[1\].match: 'nek.\*' matches no",
        ),
        (
            [{"match": "neck.*", "lr_mul": 0.1}],
            r"optim.groups\[0\].lr_mul: .*did you mean 'lr_mult'",
        ),
        ([{"match": "neck.*", "lr_mult": 0}], r"optim.groups\[0\].lr_mult: .*greater than 0"),
        ([{"match": "neck.*", "wd_mult": -1}], r"optim.groups\[0\].wd_mult: .*minimum 0"),
        ([{"lr_mult": 0.1}], r"optim.groups\[0\].match: required"),
        (["neck.*"], r"optim.groups\[0\]: expected a mapping"),
        ([{"match": "neck.*", "lr_mult": "x"}], r"optim.groups\[0\].lr_mult: expected a number"),
        ([{"match": "neck.*", "name": "a"}, {"match": "head", "name": "a"}], r"used twice"),
    ],
)
def test_group_errors_name_the_key(groups, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(_tiny(), "sgd", 0.01, groups=groups)


def test_describe_param_groups_lists_names_counts_lr_decay():
    m = _tiny()
    opt = build_optimizer(m, "sgd", 0.01, groups=[{"match": "neck", "lr_mult": 0.5}])
    apply_freeze(m, ["head"])
    text = describe_param_groups(opt)
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines()}
    assert lines["neck/weights"][1:] == ["1", "16", "0", "0.005", "0.0005"]
    assert lines["default/bias"][1:] == ["2", "6", "2", "0.01", "0"]  # BN bias 4 + head bias 2
    total = sum(p.numel() for p in m.parameters())
    assert lines["total"][1] == f"{total:,}" and lines["total"][2] == "10"  # head: 8 + 2 frozen


def test_config_adapter_builds_the_configured_optimizer():
    sec = OptimSection(
        name="rmsprop",
        lr0=0.003,
        momentum=0.5,
        eps=1e-6,
        rmsprop_alpha=0.9,
        no_decay_norm_bias=False,
        groups=[{"match": "head", "lr_mult": 2.0}],
        freeze=["backbone"],
    )
    m = _tiny()
    opt = build_optimizer(m, **optimizer_kwargs_from_config(sec, weight_decay=1e-4))
    g = _by_name(opt)
    assert type(opt) is torch.optim.RMSprop and g["head/weights"]["lr"] == pytest.approx(0.006)
    assert g["default/norm"]["weight_decay"] == 1e-4 and g["default/norm"]["alpha"] == 0.9
    assert not any(p.requires_grad for p in m.backbone.parameters())
    assert all(p.requires_grad for p in m.neck.parameters())


def test_freeze_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(ConfigError, match=r"optim.freeze\[1\]: 'bakbone' matches no parameter"):
        build_optimizer(_tiny(), "sgd", 0.01, freeze=["head", "bakbone"])


def _train_steps(m, opt, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        m.train()
        freeze_norm_stats(m)
        x = torch.randn(4, 3, 8, 8, generator=gen) * 3 + 1
        m(x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_frozen_part_unchanged_then_trains_after_unfreeze(name):
    m = _tiny()
    opt = build_optimizer(m, name, 0.05, momentum=0.9, weight_decay=0.1, freeze=["backbone.*"])
    # frozen parameters stay in the optimizer so unfreezing needs no rebuild
    assert _ids(m.backbone.parameters()) <= {id(p) for g in opt.param_groups for p in g["params"]}
    frozen0 = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    neck0 = {k: v.clone() for k, v in m.neck.state_dict().items()}
    _train_steps(m, opt, 3)
    for k, v in m.backbone.state_dict().items():  # weights and BN running stats alike
        assert torch.equal(v, frozen0[k]), k
    assert not torch.equal(m.neck[0].weight, neck0["0.weight"])
    assert not torch.equal(m.neck[1].running_mean, neck0["1.running_mean"])  # neck BN still learns
    assert all(p not in opt.state for p in m.backbone.parameters())

    assert unfreeze(m, ["backbone.*"]) == [
        "backbone.0.weight",
        "backbone.1.weight",
        "backbone.1.bias",
    ]
    _train_steps(m, opt, 1, seed=2)
    assert not torch.equal(m.backbone[0].weight, frozen0["0.weight"])
    assert not torch.equal(m.backbone[1].running_mean, frozen0["1.running_mean"])
    conv = m.backbone[0].weight
    if name == "adamw":  # fresh optimizer state: one step for the unfrozen, four for the rest
        assert opt.state[conv]["step"].item() == 1 and opt.state[m.head.weight]["step"].item() == 4
    else:
        assert "momentum_buffer" in opt.state[conv]


def test_freeze_norm_stats_only_fully_frozen_norms():
    m = _tiny()
    apply_freeze(m, ["backbone.1.weight"])  # BN bias still trains -> BN keeps training mode
    m.train()
    assert freeze_norm_stats(m) == 0 and m.backbone[1].training
    apply_freeze(m, ["backbone"])
    assert freeze_norm_stats(m) == 1 and not m.backbone[1].training and m.neck[1].training
    m.train()
    assert m.backbone[1].training  # model.train() undoes it: call after every model.train()


def test_freeze_active_epochs():
    assert [freeze_active(e, 3) for e in range(4)] == [True, True, False, False]
    assert freeze_active(100, None) and not freeze_active(0, 1)
