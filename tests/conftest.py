"""Test-session set-up shared by every test folder."""

import os

# Same as the CLI: idle OpenMP threads sleep, so tests that start DataLoader workers on a 2-core
# machine do not starve (must happen before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
