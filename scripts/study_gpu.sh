#!/usr/bin/env bash
# The Fashion-MNIST study (python -m experiments.fmnist_study, preset "full") on one lent GPU: K study
# processes side by side, each training its share of the unfinished runs (--shard I/K), then the report.
# The GPU machine reaches nothing outside: the Fashion-MNIST idx files travel in the ignored folder
# data/fashion-mnist (prepare it with `bash scripts/study_gpu.sh --prepare`, carry it with the run).
#   DRY_RUN=1 bash scripts/study_gpu.sh     # the same on the CPU: digits, 1 epoch, scratch folders
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p data/fashion-mnist
  cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
  ls -l data/fashion-mnist
  exit 0
fi
K=${STUDY_PROCS:-7}
if [ "${DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu; OUT=$(mktemp -d); EXTRA=(--dataset digits --epochs 1 --train-subset 256 --docs "$OUT/docs" --threads 1)
else
  DEVICE=${DEVICE:-cuda}; OUT=runs; EXTRA=(--data-dir data/fashion-mnist)
fi
mkdir -p "$OUT/study_gpu_logs"
echo "[study_gpu] $K processes on $DEVICE, runs under $OUT/fmnist_study_full"
for i in $(seq 0 $((K - 1))); do
  "$PY" -m experiments.fmnist_study --preset full --device "$DEVICE" --shard "$i/$K" --no-progress \
    --out "$OUT/fmnist_study_full" --model-card "" "${EXTRA[@]}" > "$OUT/study_gpu_logs/shard$i.log" 2>&1 &
done
wait
CARD=(); [ "${DRY_RUN:-0}" = 1 ] && CARD=(--model-card "")   # a dry run leaves MODEL_CARD.md alone
"$PY" -m experiments.fmnist_study --preset full --report-only --out "$OUT/fmnist_study_full" "${EXTRA[@]}" "${CARD[@]}"
echo "[study_gpu] done: commit docs/fmnist_study_full/runs/*.json (the records) and the report"
