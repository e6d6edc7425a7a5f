"""``python -m detforge.cli`` (and ``torchrun -m detforge.cli``) run the command line."""

from .main import main

raise SystemExit(main())
