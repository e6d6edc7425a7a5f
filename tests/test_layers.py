"""The import-linter contracts in pyproject.toml hold: layers point one way (config/boxes/utils ->
data/models/assign -> losses/infer -> eval -> report -> engine -> tune -> api -> cli) and each
augmentation transform imports only the augmentation core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

_LINT = (
    "from importlinter.cli import lint_imports; "
    "raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def test_import_contracts_hold():
    # a fresh interpreter with this checkout's src first, so the code under test is analysed
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _LINT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"lint-imports failed:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout
