"""Entry point: python -m patternos_training (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
