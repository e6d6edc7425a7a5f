"""CLI error lines name the command once (issue 10.11)."""

from detforge.cli import main


def test_error_prefix_is_not_doubled(capsys):
    assert main(["predict", "weights=x.pt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "detforge predict: error: missing source= (e.g. source=images/ or source='*.jpg')"
    assert main(["split"]) == 2
    assert capsys.readouterr().err.count("detforge split:") == 1


def test_train_config_errors_come_before_the_data(capsys, tmp_path):
    missing = tmp_path / "none.yaml"
    assert main(["train", f"data={missing}", "model=yolo-q", f"project={tmp_path}"]) == 2
    assert "model.name: 'yolo-q': unknown scale 'q'" in capsys.readouterr().err
