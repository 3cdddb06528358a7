#!/usr/bin/env bash
# Installs everything tglc_zoo needs on a fresh machine: PyTorch (pinned CPU/CUDA build),
# the package with its dev extra, and (as root) the Fashion-MNIST Debian package.
# Safe to run again: already-installed pieces are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  echo "[setup] installing torch 2.14.1 / torchvision 0.29.1"
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
echo "[setup] installing tglc_zoo (editable, with the train and dev extras)"
"$PY" -m pip install -q -e '.[train,dev]'

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian package dataset-fashion-mnist"
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] WARNING: Fashion-MNIST is not installed and this user cannot apt-get it;" \
         "jobs fall back to scikit-learn's digits" >&2
  fi
fi
