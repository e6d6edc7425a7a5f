"""Search spaces: YAML -> typed, ranged, conditional trial parameters; bad spaces fail by key."""

from __future__ import annotations

import math

import optuna
import pytest

from detforge.config.fields import ConfigError
from detforge.tune.space import available_spaces, load_space, parse_space

SPACE = """
optim.lr0: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
train.batch: {type: int, low: 8, high: 32, step: 8}
optimizer: {type: categorical, choices: [sgd, adamw]}
optim.momentum: {type: float, low: 0.8, high: 0.98, when: {optim.name: sgd}}
schedule.warmup_epochs: [0, 1, 3]
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return load_space(str(path))


def test_space_file_round_trips_to_trials(space):
    assert space.name == "space"
    assert [p.key for p in space.params] == [
        "optim.lr0", "train.batch", "optim.name", "optim.momentum", "schedule.warmup_epochs",
    ]  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_names, lrs = set(), []
    for _ in range(40):
        trial = study.ask()
        values = space.suggest(trial)
        study.tell(trial, 0.0)
        assert isinstance(values["optim.lr0"], float) and 1e-4 <= values["optim.lr0"] <= 1e-1
        assert isinstance(values["train.batch"], int) and values["train.batch"] in (8, 16, 24, 32)
        assert values["schedule.warmup_epochs"] in (0, 1, 3)
        seen_names.add(values["optim.name"])
        # conditional: momentum only with sgd
        assert ("optim.momentum" in values) == (values["optim.name"] == "sgd")
        if "optim.momentum" in values:
            assert 0.8 <= values["optim.momentum"] <= 0.98
        lrs.append(values["optim.lr0"])
    assert seen_names == {"sgd", "adamw"}
    dist = study.trials[0].distributions
    assert isinstance(dist["optim.lr0"], optuna.distributions.FloatDistribution)
    assert dist["optim.lr0"].log and not dist["train.batch"].log
    assert dist["train.batch"].step == 8
    # log scale: about half of the draws fall below the geometric middle (1e-2.5 ~ 0.003)
    below = sum(lr < math.sqrt(1e-4 * 1e-1) for lr in lrs)
    assert 10 <= below <= 30


def test_fixed_trial_gives_the_values_and_skips_inactive_keys(space):
    fixed = {"optim.lr0": 0.01, "train.batch": 16, "optim.name": "adamw",
             "schedule.warmup_epochs": 3}  # fmt: skip
    assert space.suggest(optuna.trial.FixedTrial(fixed)) == fixed


def test_grid(space, tmp_path):
    assert not space.is_grid
    with pytest.raises(ConfigError, match="optim.lr0: sampler grid needs plain lists"):
        space.grid()
    grid = parse_space({"lr0": [0.01, 0.02], "loss.box": [5, 7.5, 10]})
    assert grid.is_grid and grid.grid_size() == 6
    assert grid.grid() == {"optim.lr0": [0.01, 0.02], "loss.box": [5.0, 7.5, 10.0]}


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"optim.lr": [0.1]}, r"unknown key 'optim.lr' \(did you mean 'optim.lr0'\?\)"),
        ({"momentum": [0.9]}, r"unknown key 'momentum' \(did you mean 'optim.momentum'\?\)"),
        ({"optim.lr0": {"type": "float", "low": 0.1, "high": 0.1}}, "optim.lr0: empty range"),
        ({"loss.box": {"type": "float", "low": 5, "high": 2}}, "loss.box: empty range"),
        ({"loss.box": []}, "loss.box: expected a non-empty list"),
        ({"loss.box": {"type": "categorical", "choices": []}}, "loss.box: expected a non-empty"),
        ({"optim.lr0": {"type": "floats", "low": 0, "high": 1}}, r"type 'floats'.*'float'"),
        ({"train.batch": {"type": "float", "low": 1, "high": 2.5}}, "train.batch: .*integer"),
        ({"train.batch": {"type": "int", "low": 1, "high": 2.5}}, "train.batch: high: expected an integer"),  # noqa: E501
        ({"optim.name": ["sgd", "adamx"]}, r"optim.name.*'adamx' is not one of"),
        ({"optim.momentum": [0.9, 1.5]}, "optim.momentum: 1.5 must be less than 1"),
        ({"optim.lr0": {"type": "float", "low": 0, "high": 1, "log": True}}, "optim.lr0: .*log"),
        ({"optim.lr0": {"type": "float", "lo": 0, "high": 1}}, r"'lo' is not a field.*'low'"),
        ({"optim.momentum": {"type": "float", "low": 0.8, "high": 0.9,
                             "when": {"optim.name": "sgd"}}},
         "optim.momentum: when: optim.name must be a parameter given earlier"),
        ({"optim.name": ["adamw", "adam"], "optim.momentum": {
            "type": "float", "low": 0.8, "high": 0.9, "when": {"optim.name": "sgd"}}},
         "optim.name = 'sgd' is not among its choices"),
    ],
)  # fmt: skip
def test_bad_spaces_are_rejected_by_key(tree, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(tree, source="space file s.yaml")


def test_unknown_space_name_suggests_a_shipped_one():
    with pytest.raises(ConfigError, match="did you mean 'grid-lr-warmup'"):
        load_space("grid-lr-warmpu")


def test_shipped_spaces_load():
    assert available_spaces() == ["grid-box-dfl", "grid-lr-warmup", "grid-scale-copypaste",
                                  "tpe-5"]  # fmt: skip
    for name in ["grid-box-dfl", "grid-lr-warmup", "grid-scale-copypaste"]:
        space = load_space(name)
        assert space.is_grid and space.grid_size() == 9, name
    tpe = load_space("tpe-5")
    assert {p.key for p in tpe.params} == {"optim.lr0", "optim.momentum", "optim.weight_decay",
                                           "loss.box", "loss.cls"}  # fmt: skip
    assert not tpe.is_grid
