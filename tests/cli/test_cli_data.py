"""Dataset commands from the command line, and the data settings in a training run."""

import json

from detforge.cli import main
from detforge.data import load_data_yaml


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_data_stats_convert_and_split(capsys, tiny_data, tmp_path):
    code, out, err = _run(capsys, "data-stats", f"data={tiny_data}", f"out={tmp_path / 'st'}")
    assert code == 0, err
    assert "box sizes (COCO" in out and (tmp_path / "st" / "train_classes.png").is_file()
    stats = json.loads((tmp_path / "st" / "stats.json").read_text())
    assert stats["splits"]["train"]["images"] == 16

    gt = tmp_path / "val.json"
    code, out, err = _run(
        capsys, "convert", "to=coco", f"data={tiny_data}", "split=val", f"out={gt}"
    )
    assert code == 0, err
    coco = json.loads(gt.read_text())
    assert len(coco["images"]) == 8

    back = tmp_path / "back"
    images = tiny_data.parent / "images" / "val"
    code, out, err = _run(
        capsys,
        "convert",
        "from=coco",
        f"json={gt}",
        f"images={images}",
        f"out={back}",
        "split=val",
    )
    assert code == 0, err
    assert out.startswith("val: 8 images")
    assert "has no train split and uses val for it" in out
    assert f"detforge split src={back / 'images' / 'val'} out=<new folder> val=0.2" in out
    orig = sorted((tiny_data.parent / "labels" / "val").glob("*.txt"))
    new = sorted((back / "labels" / "val").glob("*.txt"))
    assert [p.name for p in orig] == [p.name for p in new]
    for a, b in zip(orig, new, strict=True):
        rows_a = [list(map(float, r.split())) for r in a.read_text().splitlines()]
        rows_b = [list(map(float, r.split())) for r in b.read_text().splitlines()]
        assert len(rows_a) == len(rows_b)
        for ra, rb in zip(sorted(rows_a), sorted(rows_b), strict=True):
            assert all(abs(x - y) < 1e-5 for x, y in zip(ra, rb, strict=True))

    code, out, err = _run(
        capsys,
        "split",
        f"src={tiny_data.parent / 'images' / 'train'}",
        f"out={tmp_path / 'sp'}",
        "val=0.25",
        "seed=3",
    )
    assert code == 0, err
    import re

    n_train, n_val = map(int, re.search(r"(\d+) train / (\d+) val", out).groups())
    assert n_train + n_val == 16 and 3 <= n_val <= 6
    # the source's class names (the demo's data.yaml) carried into the split's data.yaml
    source_names = load_data_yaml(tiny_data).names
    assert load_data_yaml(tmp_path / "sp" / "data.yaml").names == source_names
    assert f"class names ({tiny_data}): {', '.join(source_names)}" in out
    code, again, _ = _run(
        capsys,
        "split",
        f"src={tiny_data.parent / 'images' / 'train'}",
        f"out={tmp_path / 'sp2'}",
        "val=0.25",
        "seed=3",
    )
    assert (tmp_path / "sp" / "val.txt").read_text() == (tmp_path / "sp2" / "val.txt").read_text()

    code, _, err = _run(capsys, "convert", "from=coco", f"out={tmp_path}")
    assert code == 2 and "use from=coco json=" in err
    code, _, err = _run(capsys, "split", "src=x", "out=y", "vall=0.2")
    assert code == 2 and "did you mean 'val'" in err


def test_weighted_sampler_and_ram_cache_in_training(tiny_args, caplog):
    from detforge.config import load_config
    from detforge.engine.trainer import Trainer

    caplog.set_level("INFO", logger="detforge")
    extra = [
        "epochs=1",
        "data.sampler=weighted",
        "data.weighting=inverse_frequency",
        "data.cache=ram",
    ]
    res = Trainer(load_config(tiny_args + extra, env={})).fit()
    assert res.epochs_run == 1
    assert "weighted sampler (inverse_frequency, power 0.5)" in caplog.text


def test_convert_to_classify_from_the_command_line(capsys, tiny_data, tmp_path):
    out = tmp_path / "crops"
    code, text, _ = _run(capsys, "convert", "to=classify", f"data={tiny_data}", f"out={out}",
                         "pad=0", "min_size=4")  # fmt: skip
    assert code == 0 and f"-> {out}" in text
    names = load_data_yaml(tiny_data).names
    written = sorted(p.relative_to(out).parts[:2] for p in out.glob("*/*/*.png"))
    assert written and {split for split, _ in written} == {"train", "val"}
    assert {cls for _, cls in written} <= set(names)
    code, _, err = _run(capsys, "convert", "to=classify", f"data={tiny_data}", f"out={out}",
                        "min_size=0")  # fmt: skip
    assert code == 2 and "min_size" in err
