#!/usr/bin/env bash
# Create the separate virtual environment that holds Ultralytics, the benchmark peer.
#
#   bash bench/peer/setup_peer_env.sh            # venv at /work/peer/venv
#   PEER_VENV=/some/where bash bench/peer/setup_peer_env.sh
#
# Ultralytics is AGPL-3.0: it lives only in this venv, is only run by the scripts in bench/peer/,
# and is never imported by detforge's src/. Idempotent: an existing venv that already imports
# every package at the pinned torch version is left alone. pip uses the machine's own
# configuration (local wheel folders and its constraints file): do not override it.
set -euo pipefail

PEER_VENV="${PEER_VENV:-/work/peer/venv}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"

check() {
    "$PEER_VENV/bin/python" - "$TORCH_VERSION" <<'EOF'
import sys
from importlib.metadata import version

import pycocotools  # noqa: F401
import torch
import torchvision  # noqa: F401

# ultralytics is not imported here: its import writes a settings file under ~/.config.
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
print(f"peer venv ok: torch {torch.__version__}, ultralytics {version('ultralytics')}")
EOF
}

if [ -x "$PEER_VENV/bin/python" ] && check 2>/dev/null; then
    exit 0
fi

python3 -m venv "$PEER_VENV"
"$PEER_VENV/bin/pip" install \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" ultralytics pycocotools
check
