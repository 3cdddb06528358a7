#!/usr/bin/env bash
# The test suite, as a new user and CI run it: install, then pytest over everything (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -ra "$@"
