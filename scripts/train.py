#!/usr/bin/env python3
"""Train a tglc_zoo model (same as the ``tglc-train`` command); see ``--help``."""
import sys

from tglc_zoo.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
