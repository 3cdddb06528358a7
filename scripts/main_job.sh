#!/usr/bin/env bash
# The main job: install, then run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m experiments.main_job "$@"
