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


def test_every_setting_names_the_module_that_acts_on_it():
    """Config key -> code in one hop: the consumer module exists and names the key."""
    import importlib.util
    import re

    from detforge.config.schema import consumer_of

    for key in all_keys():
        module = consumer_of(key)
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{key}: consumer {module} does not exist"
        leaf = key.split(".", 1)[1]
        assert re.search(rf"\b{leaf}\b", Path(spec.origin).read_text()), (key, module)
    assert "`engine.schedule`" in settings_table()


def test_augment_params_take_their_defaults_from_the_schema():
    import dataclasses

    from detforge.config.schema import AugmentSection
    from detforge.data.augment.core import AugmentParams

    schema, params = AugmentSection(), AugmentParams()
    shared = [f.name for f in dataclasses.fields(AugmentParams) if hasattr(schema, f.name)]
    assert len(shared) == 18
    for name in shared:
        assert getattr(params, name) == getattr(schema, name), name
