"""The README's settings reference is generated from the schema and must be current."""

from pathlib import Path

from detforge.config.docs import BEGIN, END, settings_table
from detforge.config.loader import all_keys

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_block_is_current():
    text = README.read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == settings_table().strip(), (
        "README settings reference is stale: run python -m detforge.config.docs README.md"
    )


def test_every_setting_is_documented():
    text = README.read_text()
    for key, (field, _) in all_keys().items():
        assert f"`{key}`" in text, key
        assert len(field.metadata["help"]) > 10, key


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    cmds = [line for line in text.splitlines() if line.startswith("python3 -m venv")]
    assert cmds[0].endswith("detforge train")
    assert cmds[1].endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert cmds[1] in ci
