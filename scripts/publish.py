#!/usr/bin/env python3
"""Publish a training run as a checkpoint folder: ``scripts/publish.py RUN_DIR DIR [--which best]``."""
import argparse
import sys

from tglc_zoo.errors import TglcZooError
from tglc_zoo.training.publish import publish_run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", help="run folder (uses checkpoints/<which>.pt) or a training checkpoint file")
    p.add_argument("directory", help="where to write config.json + model.safetensors + README.md")
    p.add_argument("--which", choices=["last", "best"], default="last")
    p.add_argument("--push-to-hub", metavar="ORG/NAME")
    args = p.parse_args(argv)
    try:
        publish_run(args.run, args.directory, which=args.which, push_to_hub=args.push_to_hub, log=print)
    except (TglcZooError, ValueError, OSError) as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
