"""Config loading: layers, aliases, environment, validation messages, round trip."""

import pytest
import yaml

from detforge.config import ConfigError, RunConfig, dump_config, load_config


def test_defaults_and_demo_preset():
    cfg = load_config([], env={})
    assert isinstance(cfg, RunConfig)
    assert cfg.data.path is None
    assert cfg.train.imgsz == 256  # demo preset applies without data.yaml
    cfg = load_config(["data=x.yaml"], env={})
    assert cfg.train.imgsz == 640 and cfg.train.epochs == 100


def test_aliases_and_dotted_keys():
    cfg = load_config(
        ["epochs=3", "imgsz=320", "optim.lr0=0.02", "model=yolo-s", "batch=4"], env={}
    )
    assert (cfg.train.epochs, cfg.train.imgsz, cfg.optim.lr0) == (3, 320, 0.02)
    assert cfg.model.name == "yolo-s" and cfg.train.batch == 4
    assert isinstance(cfg.optim.lr0, float)


@pytest.mark.parametrize(
    "arg, message",
    [
        ("optim.lr=0.1", "unknown key 'optim.lr' (did you mean 'optim.lr0'?)"),
        ("epoch=3", "unknown key 'epoch' (did you mean 'epochs'?)"),
        ("train.epoch=3", "did you mean 'train.epochs'?"),
        ("lrf=0.1", "did you mean 'schedule.lrf'?"),
        ("epochs=0", "train.epochs: 0 is below the minimum 1"),
        ("imgsz=100", "train.imgsz: 100 is not a multiple of 32"),
        ("optim.name=sdg", "did you mean 'sgd'?"),
        ("epochs=abc", "train.epochs: expected an integer"),
        ("augment.fliplr=1.5", "augment.fliplr: 1.5 is above the maximum 1"),
        ("train.fitness={map5: 1}", "unknown metric 'map5'"),
        ("train.device=gpu", "train.device"),
        ("novalue", "expected key=value"),
    ],
)
def test_bad_settings_name_the_key(arg, message):
    with pytest.raises(ConfigError) as e:
        load_config([arg], env={})
    assert message in str(e.value)


def test_env_layer_below_cli():
    env = {"DETFORGE_OPTIM__LR0": "0.05", "DETFORGE_EPOCHS": "7", "DETFORGE_CACHE": "/tmp/x"}
    cfg = load_config([], env=env)
    assert cfg.optim.lr0 == 0.05 and cfg.train.epochs == 7
    cfg = load_config(["epochs=9"], env=env)
    assert cfg.train.epochs == 9
    with pytest.raises(ConfigError, match="DETFORGE_OPTIM__LR1: unknown key 'optim.lr1'"):
        load_config([], env={"DETFORGE_OPTIM__LR1": "1"})


def test_yaml_file_layer_and_round_trip(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr0: 0.03\ntrain:\n  epochs: 4\n")
    cfg = load_config(["epochs=5"], cfg_file=f, env={})
    assert cfg.optim.lr0 == 0.03 and cfg.train.epochs == 5
    dumped = tmp_path / "config.yaml"
    dumped.write_text(dump_config(cfg))
    again = load_config([], cfg_file=dumped, env={})
    assert again == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr00: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optim.lr00.*did you mean 'optim.lr0'"):
        load_config([], cfg_file=bad, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([], cfg_file=tmp_path / "missing.yaml", env={})


def test_dump_is_plain_yaml():
    text = dump_config(load_config(["data=d.yaml"], env={}))
    tree = yaml.safe_load(text)
    assert tree["data"]["path"] == "d.yaml" and "lr0" in tree["optim"]


def test_yaml_12_values():
    cfg = load_config(["amp=off", "optim.lr0=1e-3", "train.ema=false"], env={})
    assert cfg.train.amp == "off" and cfg.optim.lr0 == 0.001 and cfg.train.ema is False


def test_amp_off_in_a_config_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  amp: off\noptim:\n  weight_decay: 5e-4\n")
    cfg = load_config([], cfg_file=f, env={})
    assert cfg.train.amp == "off" and cfg.optim.weight_decay == 5e-4


def test_unknown_tta_view_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"tta.transforms: unknown view 'flp'.*'flip'"):
        load_config(["tta.transforms=[flp, scale]"], env={})
    assert load_config(["tta.transforms=[rot90]"], env={}).tta.transforms == ["rot90"]


def test_python_api_mapping_takes_aliases_dotted_keys_and_sections():
    """Issue 10.1: the README's detforge.train(data=..., model=..., epochs=...) call."""
    cfg = load_config(
        {
            "data": "pcb/data.yaml",
            "model": "yolo-s",
            "epochs": 50,
            "imgsz": 320,
            "batch": 8,
            "device": "cpu",
            "name": "exp",
            "project": "out",
            "weights": "init.pt",
            "optim.lr0": 0.02,
            "schedule": {"name": "linear"},
        },
        env={},
    )
    assert (cfg.data.path, cfg.model.name, cfg.train.epochs) == ("pcb/data.yaml", "yolo-s", 50)
    assert (cfg.train.imgsz, cfg.train.batch, cfg.train.device) == (320, 8, "cpu")
    assert (cfg.train.name, cfg.train.project, cfg.model.weights) == ("exp", "out", "init.pt")
    assert cfg.optim.lr0 == 0.02 and cfg.schedule.name == "linear"
    cfg = load_config({"data": {"path": "d.yaml"}, "model": {"name": "yolo-m"}}, env={})
    assert (cfg.data.path, cfg.model.name) == ("d.yaml", "yolo-m")
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        load_config({"epoch": 3}, env={})


def test_cli_and_api_share_one_alias_table():
    from detforge.cli.main import USAGE
    from detforge.config import ALIASES

    listed = USAGE.split("aliases (", 1)[1].split(")", 1)[0]
    assert {a.strip() for a in listed.replace("\n", " ").split(",")} == set(ALIASES)


def test_value_errors_name_their_source_and_case_hint():
    with pytest.raises(ConfigError, match="DETFORGE_EPOCHS.*train.epochs: expected an integer"):
        load_config([], env={"DETFORGE_EPOCHS": "abc"})
    with pytest.raises(ConfigError, match=r"optim.name: 'SGD'.*did you mean 'sgd'\?"):
        load_config(["optimizer=SGD"], env={})


def test_short_runs_fit_defaults_and_say_so(caplog):
    caplog.set_level("INFO", logger="detforge")
    cfg = load_config(["data=d.yaml", "epochs=2"], env={})
    assert cfg.schedule.warmup_epochs == 0.4 and cfg.augment.close_mosaic == 1
    assert (
        "short run of 2 epochs: defaults fitted to it: schedule.warmup_epochs 3 -> 0.4, "
        "augment.close_mosaic 10 -> 1" in caplog.text
    )
    caplog.clear()
    cfg = load_config(
        ["data=d.yaml", "epochs=2", "schedule.warmup_epochs=3", "augment.close_mosaic=10"], env={}
    )
    assert cfg.schedule.warmup_epochs == 3.0 and cfg.augment.close_mosaic == 10  # kept
    assert "schedule.warmup_epochs=3 is not shorter than the 2-epoch run" in caplog.text
    assert "augment.close_mosaic=10 turns mosaic off for the whole 2-epoch run" in caplog.text
    caplog.clear()
    # the demo and long runs are left exactly as they were
    demo = load_config([], env={})
    assert (demo.train.epochs, demo.schedule.warmup_epochs, demo.augment.close_mosaic) == (
        15,
        1.0,
        10,
    )
    long = load_config(["data=d.yaml"], env={})
    assert (long.schedule.warmup_epochs, long.augment.close_mosaic) == (3.0, 10)
    assert caplog.text == ""
    # a checkpoint's saved settings are what that run used: not changed again
    saved = load_config(base={"train": {"epochs": 2}, "schedule": {"warmup_epochs": 3.0}}, env={})
    assert saved.schedule.warmup_epochs == 3.0
