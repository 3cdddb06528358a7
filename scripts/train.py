#!/usr/bin/env python3
"""Train a tglc_zoo model (same as the ``tglc-train`` command); see ``--help``."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tglc_zoo.training.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
