#!/usr/bin/env bash
# The benchmark of python -m benchmarks.bench on CUDA: fp32 and bf16 autocast, batch 128, in under 8 minutes.
# Results go to docs/bench/gpu/ and the CUDA rows of tglc_zoo/layers/gc2l_impl_table.json (commit both). Three stages with their own time budgets; a stage that
# runs out of budget still writes what it measured (its JSON says truncated_by_time_budget).
#
#   bash scripts/bench_gpu.sh                 # on a machine with a GPU
#   DRY_RUN=1 bash scripts/bench_gpu.sh       # on a CPU: the same commands on a tiny subset, into /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-docs/bench/gpu}
DEVICE=${DEVICE:-cuda}
COMMON=(--device "$DEVICE" --dtypes fp32 bf16 --cudnn-benchmark)

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  DEVICE=cpu; OUT=${OUT_DRY:-/tmp/tglc_bench_gpu_dry}
  COMMON=(--device cpu --dtypes fp32 bf16)
  STAGE1=(--grids wrn28_10 --groups 4 --batch 2 --min-run-time 0.01 --rounds 1 --no-models --time-budget 20)
  STAGE2=(--grids mobilenetv2 --groups 8 --layouts channels_last --batch 2 --min-run-time 0.01 --rounds 1
          --no-models --time-budget 20)
  STAGE3=(--no-layers --models wrn16_4 --model-groups 4 --model-convs sc gc2l --train-batch 2 --model-iters 1
          --time-budget 60)
else
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use DRY_RUN=1 on a CPU')"
  # 1) the goal grid: every WRN-28-10 shape, N in {2,4,8,16}, both layouts, fwd and fwd+bwd   (~3.5 min)
  STAGE1=(--grids wrn28_10 --batch 128 --min-run-time 0.03 --rounds 1 --no-models --time-budget 200
          --write-impl-table)
  # 2) WRN-34-2 and MobileNetV2 1x1 shapes, channels_last                                      (~1.5 min)
  STAGE2=(--grids wrn34_2 mobilenetv2 --layouts channels_last --batch 128 --min-run-time 0.02 --rounds 1
          --no-models --time-budget 90 --write-impl-table)
  # 3) whole models: train img/s (batch 128) and batch-1 latency, every conv type, N = 4 and 8  (~2 min)
  STAGE3=(--no-layers --models wrn28_10 wrn16_4 mobilenetv2 --train-batch 128 --model-iters 10
          --time-budget 120)
fi
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" > "$OUT/nvidia-smi.txt"
start=$(date +%s)
"$PY" -m benchmarks.bench "${COMMON[@]}" "${STAGE1[@]}" --out "$OUT" --name layers_wrn28_10 | tee "$OUT/layers_wrn28_10.log"
"$PY" -m benchmarks.bench "${COMMON[@]}" "${STAGE2[@]}" --out "$OUT" --name layers_wrn34_2_mobilenetv2 \
  | tee "$OUT/layers_wrn34_2_mobilenetv2.log"
"$PY" -m benchmarks.bench "${COMMON[@]}" "${STAGE3[@]}" --out "$OUT" --name models | tee "$OUT/models.log"
echo "bench_gpu.sh: $(( $(date +%s) - start ))s, results in $OUT"
