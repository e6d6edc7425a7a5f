"""Schedules: PyTorch reference curves to 1e-9, a contract over every schedule, config errors,
and the schedule plot."""

import dataclasses
import math
import typing
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as sched

from detforge.config import ConfigError
from detforge.config.schema import ScheduleSection
from detforge.engine.schedule import build_lr_schedule, is_bias_group
from detforge.engine.schedule_plot import plot_schedule

SCHEDULES = typing.get_args(typing.get_type_hints(ScheduleSection)["name"])

# PyTorch computes most schedulers in a chained form (lr *= ratio each step), which drifts by a
# few ulps over a run; 1e-9 relative is far below any lr difference that matters and far above
# the drift.
REL = 1e-9


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-15)


def cfg(**kw) -> ScheduleSection:
    kw.setdefault("warmup_epochs", 0.0)
    return ScheduleSection(**kw)


def torch_curve(make, lr0: float, n: int, metrics=None, warm=None) -> list[float]:
    """lr of a one-group optimizer after 0..n-1 scheduler steps.

    metrics: {index: value} fed to a ReduceLROnPlateau (``make`` returns one) after that index;
    warm: (steps, start_factor) of a LinearLR stepped before the plateau scheduler takes over.
    """
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
    warmup = None
    if warm is not None and warm[0] > 0:
        warmup = sched.LinearLR(opt, start_factor=warm[1], end_factor=1.0, total_iters=warm[0])
    s = make(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's internal step(0) deprecation warning
        for i in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if warmup is not None and i < warm[0]:
                warmup.step()
            if metrics is not None:
                if i in metrics:
                    s.step(metrics[i])
            else:
                s.step()
    return out


def ours(c: ScheduleSection, lr0: float, epochs: int, spe: int) -> list[float]:
    s = build_lr_schedule(c, lr0=lr0, momentum=0.9, epochs=epochs, steps_per_epoch=spe)
    return [s.lr(i, lr0) for i in range(s.total_steps)]


def assert_curves(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if not close(g, w)]
    assert not bad, f"{len(bad)} values differ, first: {bad[:3]}"


def per_epoch(values: list[float], spe: int) -> list[float]:
    """Expand one value per epoch to one per step (what interval epoch must give)."""
    return [v for v in values for _ in range(spe)]


# --------------------------------------------------------------------------- PyTorch references
@pytest.mark.parametrize("min_lr,lrf", [(None, 0.01), (1e-5, 0.01), (None, 0.0)])
def test_cosine_matches_cosine_annealing(min_lr, lrf):
    epochs, spe, lr0 = 12, 7, 0.01
    eta_min = min_lr if min_lr is not None else lr0 * lrf
    want = torch_curve(
        lambda o: sched.CosineAnnealingLR(o, epochs * spe, eta_min), lr0, epochs * spe
    )
    assert_curves(ours(cfg(name="cosine", min_lr=min_lr, lrf=lrf), lr0, epochs, spe), want)


@pytest.mark.parametrize("warm_epochs", [0, 1, 2, 3])
@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_step_with_linear_warmup_matches_sequential(warm_epochs, interval):
    epochs, spe, lr0, sf = 20, 5, 0.02, 0.1
    units = spe if interval == "step" else 1
    w = warm_epochs * units
    n = epochs * units

    def make(o):
        main = sched.StepLR(o, step_size=4 * units, gamma=0.5)
        if w == 0:
            return main
        warm = sched.LinearLR(o, start_factor=sf, total_iters=w)
        return sched.SequentialLR(o, [warm, main], milestones=[w])

    want = torch_curve(make, lr0, n)
    c = cfg(
        name="step", step_size=4, gamma=0.5, interval=interval,
        warmup_epochs=warm_epochs, warmup_start_factor=sf,
    )  # fmt: skip
    got = ours(c, lr0, epochs, spe)
    assert_curves(got, want if interval == "step" else per_epoch(want, spe))


def test_fractional_step_size_and_multistep_match_torch():
    epochs, spe, lr0 = 10, 10, 0.1
    want = torch_curve(lambda o: sched.StepLR(o, step_size=3, gamma=0.7), lr0, epochs * spe)
    assert_curves(ours(cfg(name="step", step_size=0.3, gamma=0.7), lr0, epochs, spe), want)
    want = torch_curve(
        lambda o: sched.MultiStepLR(o, milestones=[25, 55, 80], gamma=0.3), lr0, epochs * spe
    )
    c = cfg(name="multistep", milestones=[5.5, 2.5, 8.0], gamma=0.3)  # unsorted on purpose
    assert_curves(ours(c, lr0, epochs, spe), want)


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_multistep_with_warmup_matches_sequential(interval):
    epochs, spe, lr0 = 10, 4, 0.01
    units = spe if interval == "step" else 1

    def make(o):
        warm = sched.LinearLR(o, start_factor=0.25, total_iters=2 * units)
        main = sched.MultiStepLR(o, milestones=[3 * units, 6 * units], gamma=0.1)
        return sched.SequentialLR(o, [warm, main], milestones=[2 * units])

    want = torch_curve(make, lr0, epochs * units)
    c = cfg(
        name="multistep", milestones=[3, 6], interval=interval,
        warmup_epochs=2, warmup_start_factor=0.25,
    )  # fmt: skip
    got = ours(c, lr0, epochs, spe)
    assert_curves(got, want if interval == "step" else per_epoch(want, spe))


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("total,pct", [(100, 0.3), (37, 0.25), (10, 0.12), (5, 0.15)])
def test_onecycle_matches_onecycle_lr(anneal, total, pct):
    lr0 = 0.05

    def make(o):
        return sched.OneCycleLR(
            o, max_lr=lr0, total_steps=total, pct_start=pct, anneal_strategy=anneal,
            div_factor=10.0, final_div_factor=100.0, cycle_momentum=False,
        )  # fmt: skip

    want = torch_curve(make, lr0, total)
    c = cfg(name="onecycle", pct_start=pct, anneal=anneal, div_factor=10.0, final_div_factor=100.0)
    assert_curves(ours(c, lr0, total, 1), want)


def test_onecycle_peak_at_first_step():
    # pct_start * T = 1 puts the peak at step 0 (PyTorch divides by zero there): start at the peak
    c = cfg(name="onecycle", pct_start=0.1)
    s = build_lr_schedule(c, lr0=0.1, momentum=0.9, epochs=10, steps_per_epoch=1)
    assert s.lr_factor(0) == 1.0 and math.isclose(s.lr_factor(9), 1 / 25e4)


@pytest.mark.parametrize("warmup", [{"warmup_fraction": 0.1}, {"warmup_epochs": 3.0}])
@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_adamw_recipe_linear_warmup_then_cosine_to_1e5(interval, warmup):
    """Warmup over the first 10% of epochs from 0.1x, then cosine down to 1e-5."""
    epochs, spe, lr0 = 30, 6, 1e-3
    units = spe if interval == "step" else 1
    w, n = 3 * units, epochs * units

    def make(o):
        warm = sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=w)
        cos = sched.CosineAnnealingLR(o, T_max=n - w, eta_min=1e-5)
        return sched.SequentialLR(o, [warm, cos], milestones=[w])

    want = torch_curve(make, lr0, n)
    c = cfg(
        name="cosine", min_lr=1e-5, interval=interval, warmup_start_factor=0.1, **warmup
    )  # fmt: skip
    got = ours(c, lr0, epochs, spe)
    assert_curves(got, want if interval == "step" else per_epoch(want, spe))


def test_linear_exponential_polynomial_and_constant_warmup_match_torch():
    epochs, spe, lr0 = 8, 5, 0.01
    n = epochs * spe
    want = torch_curve(lambda o: sched.LinearLR(o, 1.0, 0.05, total_iters=n), lr0, n)
    assert_curves(ours(cfg(name="linear", lrf=0.05), lr0, epochs, spe), want)
    want = torch_curve(lambda o: sched.PolynomialLR(o, total_iters=n, power=2.0), lr0, n)
    assert_curves(ours(cfg(name="polynomial", lrf=0.0, power=2.0), lr0, epochs, spe), want)
    want = torch_curve(lambda o: sched.ExponentialLR(o, gamma=0.8), lr0, epochs)
    got = ours(cfg(name="exponential", gamma=0.8, interval="epoch"), lr0, epochs, spe)
    assert_curves(got, per_epoch(want, spe))
    # per step, gamma is per epoch: spe steps multiply by gamma once
    got = ours(cfg(name="exponential", gamma=0.8), lr0, epochs, spe)
    assert close(got[spe], lr0 * 0.8) and close(got[2 * spe + 2], lr0 * 0.8 ** (12 / spe))

    def make(o):
        warm = sched.ConstantLR(o, factor=0.3, total_iters=spe)
        return sched.SequentialLR(o, [warm, sched.LinearLR(o, 1.0, 0.01, n - spe)], [spe])

    want = torch_curve(make, lr0, n)
    c = cfg(name="linear", warmup_epochs=1, warmup_method="constant", warmup_start_factor=0.3)
    assert_curves(ours(c, lr0, epochs, spe), want)


METRICS = [1.0, 0.9, 0.9, 0.9, 0.96, 0.94, 0.97, 0.97, 0.98, 0.5, 0.5, 0.7, 0.7, 0.5, 0.8]


@pytest.mark.parametrize("warm_epochs", [0, 2])
@pytest.mark.parametrize(
    "opts",
    [
        dict(mode="auto", patience=1, cooldown=0, threshold_mode="rel"),
        dict(mode="min", patience=0, cooldown=2, threshold=0.02, threshold_mode="abs"),
        dict(mode="max", patience=2, cooldown=1, threshold_mode="rel", min_lr=2e-4),
        dict(mode="min", patience=1, cooldown=0, threshold=0.0, threshold_mode="abs"),
    ],
)
def test_plateau_matches_reduce_lr_on_plateau(opts, warm_epochs):
    epochs, spe, lr0 = len(METRICS), 3, 0.01
    opts = dict(opts)
    min_lr = opts.pop("min_lr", None)
    mode = "min" if opts["mode"] == "auto" else opts["mode"]
    # validation after every epoch; results seen during warmup are ignored by both
    w = warm_epochs * spe
    metrics = {(e + 1) * spe - 1: m for e, m in enumerate(METRICS) if (e + 1) * spe >= w}

    def make(o):
        return sched.ReduceLROnPlateau(
            o, mode=mode, factor=0.5, min_lr=min_lr or 0.0,
            **{k: v for k, v in opts.items() if k != "mode"},
        )  # fmt: skip

    want = torch_curve(make, lr0, epochs * spe, metrics=metrics, warm=(w, 0.2))
    c = cfg(
        name="plateau", monitor="val/loss", factor=0.5, min_lr=min_lr,
        warmup_epochs=warm_epochs, warmup_start_factor=0.2, **opts,
    )  # fmt: skip
    s = build_lr_schedule(c, lr0=lr0, momentum=0.9, epochs=epochs, steps_per_epoch=spe)
    assert s.needs_metric and s.mode == mode
    got, cuts = [], 0
    for step in range(epochs * spe):
        got.append(s.lr(step, lr0))
        if (step + 1) % spe == 0:
            cuts += s.observe(METRICS[(step + 1) // spe - 1], step=step + 1)
    assert_curves(got, want)
    assert cuts >= 1  # the sequence really exercises a cut


def test_plateau_auto_mode_by_name():
    cases = [
        ("val/loss", "min"),
        ("val/box", "min"),
        ("val/cls", "min"),
        ("val/dfl", "min"),
        ("val/box_loss", "min"),
        ("map50_95", "max"),
        ("fitness", "max"),
    ]
    for monitor, mode in cases:
        s = build_lr_schedule(
            cfg(name="plateau", monitor=monitor), lr0=0.01, momentum=0.9, epochs=5,
            steps_per_epoch=2,
        )  # fmt: skip
        assert s.mode == mode


# --------------------------------------------------------------------------- contract
CONTRACT = {
    "cosine": {},
    "linear": {"lrf": 0.1},
    "step": {"step_size": 2, "gamma": 0.5},
    "multistep": {"milestones": [2, 4], "gamma": 0.5},
    "exponential": {"gamma": 0.8},
    "polynomial": {"power": 2.0, "min_lr": 1e-4},
    "onecycle": {"warmup_epochs": 0},
    "constant": {},
    "plateau": {"patience": 0, "factor": 0.5},
}
EPOCHS, SPE, LR0, WARM = 8, 5, 0.01, 2


def contract_cfg(name: str, **kw) -> ScheduleSection:
    opts = {"warmup_epochs": WARM, "warmup_start_factor": 0.1, **CONTRACT[name], **kw}
    return ScheduleSection(name=name, **opts)


def make(c: ScheduleSection):
    return build_lr_schedule(c, lr0=LR0, momentum=0.937, epochs=EPOCHS, steps_per_epoch=SPE)


def test_contract_covers_every_schedule():
    assert set(CONTRACT) == set(SCHEDULES)


def expected_end(name: str, s) -> float:
    """Multiplier at step total_steps (just after the last step) with no plateau cut."""
    decay_epochs = (s.total_steps - s.warmup_steps) / SPE
    return {
        "cosine": 0.01,
        "linear": 0.1,
        "step": 0.5 ** math.floor(decay_epochs / 2),
        "multistep": 0.25,
        "exponential": 0.8**decay_epochs,
        "polynomial": 1e-4 / LR0,
        "onecycle": 1 / (25.0 * 1e4),
        "constant": 1.0,
        "plateau": 1.0,
    }[name]


@pytest.mark.parametrize("name", SCHEDULES)
def test_contract_start_end_and_monotonic_warmup(name):
    s = make(contract_cfg(name))
    warm = [s.lr_factor(i) for i in range(s.warmup_steps + 1)]
    assert all(b >= a for a, b in zip(warm, warm[1:], strict=False))
    if name == "onecycle":
        assert s.warmup_steps == 0
        assert close(s.lr_factor(0), 1 / 25.0)
        assert close(s.lr_factor(s.total_steps - 1), expected_end(name, s))
        rise = [s.lr_factor(i) for i in range(int(0.3 * s.total_steps))]
        assert all(b > a for a, b in zip(rise, rise[1:], strict=False))
    else:
        assert s.warmup_steps == WARM * SPE
        assert close(s.lr_factor(0), 0.1)
        assert close(s.lr_factor(s.warmup_steps), 1.0)
        assert close(s.lr_factor(s.total_steps), expected_end(name, s))
    assert s.momentum_at(s.warmup_steps) == 0.937
    assert s.momentum_at(0) == (0.8 if s.warmup_steps else 0.937)


def groups_optimizer() -> torch.optim.Optimizer:
    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(4)]
    opt = torch.optim.SGD(
        [
            {"params": [p[0]], "name": "weights", "initial_lr": 0.01},
            {"params": [p[1]], "name": "backbone.*/weights", "initial_lr": 0.001},
            {"params": [p[2]], "name": "bias", "initial_lr": 0.01},
            {"params": [p[3]], "name": "backbone.*/bias", "initial_lr": 0.001},
        ],
        lr=0.01,
        momentum=0.9,
    )
    return opt


@pytest.mark.parametrize("name", SCHEDULES)
def test_contract_group_multipliers_kept(name):
    s = make(contract_cfg(name))
    opt = groups_optimizer()
    assert [is_bias_group(g) for g in opt.param_groups] == [False, False, True, True]
    for step in range(s.total_steps):
        if name == "plateau" and step == 4 * SPE:
            s.observe(1.0, step=step)
            s.observe(2.0, step=step)  # a cut, which must keep the ratios too
        s.apply(opt, step)
        lr = [g["lr"] for g in opt.param_groups]
        assert math.isclose(lr[0], 10 * lr[1], rel_tol=1e-12)
        assert opt.param_groups[0]["momentum"] == s.momentum_at(step)
        if step >= s.warmup_steps:
            assert math.isclose(lr[2], 10 * lr[3], rel_tol=1e-12) and lr[2] == lr[0]
        else:  # bias groups start at warmup_bias_factor x their own lr and ramp to it
            frac = step / s.warmup_steps
            for b, base in ((lr[2], 0.01), (lr[3], 0.001)):
                assert math.isclose(b, 10 * base + (base - 10 * base) * frac, rel_tol=1e-12)
    if name == "plateau":
        assert s.lr_factor(s.total_steps - 1) == 0.5


@pytest.mark.parametrize("name", SCHEDULES)
def test_contract_state_round_trip(name):
    s = make(contract_cfg(name))
    half = s.total_steps // 2
    for e in range(1, 5):
        s.observe([1.0, 0.8, 0.9, 0.9][e - 1], step=e * SPE)
    state = s.state_dict()
    t = make(contract_cfg(name))
    t.load_state_dict(state)
    assert [t.lr_factor(i) for i in range(half, s.total_steps)] == [
        s.lr_factor(i) for i in range(half, s.total_steps)
    ]
    for v in (0.95, 0.95, 0.7, 0.99):
        assert t.observe(v, step=6 * SPE) == s.observe(v, step=6 * SPE)
        assert t.lr_factor(6 * SPE) == s.lr_factor(6 * SPE)
    if name == "plateau":
        assert s.lr_factor(s.total_steps) < 1.0  # the observations did cut
        with pytest.raises(ValueError, match="mode"):
            make(contract_cfg(name, mode="max")).load_state_dict(state)
    else:
        assert s.observe(0.1, step=6 * SPE) is False
    with pytest.raises(ValueError, match="schedule.name"):
        make(contract_cfg("constant" if name != "constant" else "cosine")).load_state_dict(state)


@pytest.mark.parametrize("name", SCHEDULES)
def test_contract_interval_epoch_constant_within_epoch(name):
    s = make(contract_cfg(name, interval="epoch"))
    for e in range(EPOCHS):
        steps = range(e * SPE, (e + 1) * SPE)
        assert len({s.lr(i, LR0) for i in steps}) == 1
        assert len({s.lr(i, LR0, is_bias=True) for i in steps}) == 1
        assert len({s.momentum_at(i) for i in steps}) == 1
    values = [s.lr_factor(e * SPE) for e in range(EPOCHS)]
    assert len(set(values)) > 1


# --------------------------------------------------------------------------- details and errors
def test_bias_warmup_and_momentum_values():
    c = cfg(warmup_iters=10, warmup_bias_factor=10.0, warmup_momentum=0.8, name="constant")
    s = build_lr_schedule(c, lr0=0.01, momentum=0.9, epochs=2, steps_per_epoch=10)
    assert s.warmup_steps == 10 and s.total_steps == 20
    assert s.lr(0, 0.01, is_bias=True) == 0.1
    assert math.isclose(s.lr(5, 0.01, is_bias=True), 0.055)
    assert s.lr(10, 0.01, is_bias=True) == 0.01 == s.lr(10, 0.01)
    assert s.lr(0, 0.01) == 0.0 and math.isclose(s.lr(5, 0.01), 0.005)
    assert math.isclose(s.momentum_at(5), 0.85)
    no_bias = build_lr_schedule(
        dataclasses.replace(c, warmup_bias_factor=None), lr0=0.01, momentum=None, epochs=2,
        steps_per_epoch=10,
    )  # fmt: skip
    assert no_bias.lr(5, 0.01, is_bias=True) == no_bias.lr(5, 0.01)
    assert no_bias.momentum_at(5) is None


def test_warmup_length_rounding_and_longer_than_run():
    def steps(**kw):
        c = ScheduleSection(**kw)
        return build_lr_schedule(c, lr0=0.1, momentum=0.9, epochs=2, steps_per_epoch=5)

    assert steps(warmup_epochs=0.5).warmup_steps == 3  # 2.5 rounded half up
    assert steps(warmup_epochs=1, warmup_iters=7).warmup_steps == 7
    assert steps(warmup_epochs=1, warmup_iters=7, warmup_fraction=0.3).warmup_steps == 3
    assert steps(warmup_fraction=0.25).warmup_steps == 3  # 2.5 rounded half up
    assert steps(warmup_fraction=0.5, interval="epoch").warmup_steps == 5
    s = steps(warmup_epochs=3)  # longer than the run: the run ends inside the warmup
    assert s.warmup_steps == 15 and math.isclose(s.lr_factor(9), 9 / 15)


def test_apply_adam_betas_and_missing_initial_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=0.002, betas=(0.9, 0.999))
    s = build_lr_schedule(cfg(warmup_iters=4), lr0=0.002, momentum=0.9, epochs=2, steps_per_epoch=4)
    s.apply(opt, 2)
    g = opt.param_groups[0]
    assert g["initial_lr"] == 0.002 and math.isclose(g["lr"], 0.001)
    assert math.isclose(g["betas"][0], 0.85) and g["betas"][1] == 0.999


@pytest.mark.parametrize(
    "kw,epochs,key",
    [
        (dict(name="multistep", milestones=[60, 120]), 100, "schedule.milestones: 120 is not"),
        (dict(name="multistep", milestones=[98], warmup_epochs=3), 100, "warmup of 3 epochs"),
        (dict(name="multistep", milestones=[0]), 100, "schedule.milestones: 0"),
        (dict(name="step", step_size=30), 20, "schedule.step_size"),
        (dict(name="onecycle", warmup_epochs=3), 10, "schedule.warmup_epochs: onecycle"),
        (dict(name="onecycle", warmup_iters=5), 10, "schedule.warmup_iters: onecycle"),
        (dict(interval="epoch", warmup_epochs=0.5), 10, "schedule.warmup_epochs: a warmup of 0.5"),
        (dict(interval="epoch", warmup_iters=50), 10, "schedule.warmup_iters"),
        (dict(interval="epoch", warmup_fraction=0.25), 10, "schedule.warmup_fraction: a warmup"),
        (dict(name="onecycle", warmup_fraction=0.1), 10, "schedule.warmup_fraction: onecycle"),
        (dict(min_lr=0.5), 10, "schedule.min_lr"),
        (dict(warmup_method="constant", warmup_epochs=1), 10, "schedule.warmup_start_factor"),
        (dict(name="plateau", monitor=" "), 10, "schedule.monitor"),
    ],
)
def test_config_errors_name_the_key(kw, epochs, key):
    kw.setdefault("warmup_epochs", 0)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("(", r"\(")):
        build_lr_schedule(
            ScheduleSection(**kw), lr0=0.01, momentum=0.9, epochs=epochs, steps_per_epoch=10
        )


def test_valid_edge_cases_build():
    ok = dict(lr0=0.01, momentum=0.9, epochs=10, steps_per_epoch=10)
    build_lr_schedule(cfg(name="onecycle"), **ok)
    build_lr_schedule(cfg(name="multistep", milestones=[9.9]), **ok)
    build_lr_schedule(cfg(interval="epoch", warmup_iters=0, warmup_epochs=0.5), **ok)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_lr_schedule(cfg(), lr0=0.01, momentum=0.9, epochs=3, steps_per_epoch=0)


# --------------------------------------------------------------------------- plot
def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 400 and height >= 300


def test_plot_schedule_png_and_values(tmp_path):
    c = ScheduleSection(
        name="cosine",
        warmup_epochs=2,
        warmup_start_factor=0.1,
        min_lr=1e-5,
        warmup_bias_factor=50.0,
    )
    groups = [("backbone", 0.1, False), ("head", 1.0, False), ("bias", 1.0, True)]
    out = tmp_path / "sched" / "schedule.png"
    curves = plot_schedule(
        c, lr0=1e-3, epochs=10, steps_per_epoch=7, out_png=out, groups=groups, momentum=0.9
    )
    assert_png(out)
    s = build_lr_schedule(c, lr0=1e-3, momentum=0.9, epochs=10, steps_per_epoch=7)
    assert curves.steps == list(range(70)) and curves.epochs[7] == 1.0
    for name, mult, is_bias in groups:
        assert curves.lrs[name] == [s.lr(i, 1e-3 * mult, is_bias) for i in range(70)]
    assert curves.momentum == [s.momentum_at(i) for i in range(70)]
    assert curves.lrs["bias"][0] == 0.05 and curves.lrs["head"][14] == 1e-3


def test_plot_schedule_plateau_and_long_runs(tmp_path):
    c = ScheduleSection(name="plateau", warmup_epochs=1)
    out = tmp_path / "plateau.png"
    curves = plot_schedule(c, lr0=0.01, epochs=300, steps_per_epoch=1000, out_png=out)
    assert_png(out)
    assert len(curves.steps) <= 20_000 and curves.steps[0] == 0 and curves.steps[-1] == 299_999
    assert curves.lrs["weights"][-1] == 0.01  # no cut assumed
    assert curves.momentum == [None] * len(curves.steps)


def test_early_stopping_auto_mode_matches_the_plateau_rule():
    from detforge.engine.early_stop import EarlyStopping

    assert EarlyStopping("val/dfl", "auto", patience=2).mode == "min"
    assert EarlyStopping("val/loss", "auto", patience=2).mode == "min"
    assert EarlyStopping("mean_iou", "auto", patience=2).mode == "max"
    assert EarlyStopping("val/dfl", "max", patience=2).mode == "max"  # explicit mode wins
