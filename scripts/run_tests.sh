#!/usr/bin/env bash
# The test suite, as a new user and CI run it: install, lint (ruff), type-check (mypy), then pytest over
# everything (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
echo "[tests] ruff check"
"$PY" -m ruff check .
echo "[tests] mypy"
"$PY" -m mypy
exec "$PY" -m pytest -ra "$@"
