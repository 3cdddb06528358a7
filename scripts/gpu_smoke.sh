#!/usr/bin/env bash
# CUDA smoke run of the training loop: AMP (bf16 by default) + channels_last, 2 epochs of
# wrn16_4_gc2l_n4 on Fashion-MNIST at batch 256 (468 steps), then the measured img/s and test accuracy.
# Meant to take well under 5 minutes on one recent GPU.  Extra arguments go to scripts/train.py
# (e.g. `--amp fp16`, `--compile`).  SMOKE_DEVICE=cpu SMOKE_STEPS=3 checks the wiring without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${SMOKE_DEVICE:-cuda}
OUT=${SMOKE_OUT:-runs/gpu_smoke}/run-$(date +%Y%m%d-%H%M%S)-$$
LIMIT=()
if [[ -n "${SMOKE_STEPS:-}" ]]; then LIMIT=(--limit-train-batches "$SMOKE_STEPS" --limit-val-batches "$SMOKE_STEPS"); fi
if [[ "$DEVICE" == cuda* ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_smoke: no CUDA device (torch.cuda.is_available() is False)')"
  "$PY" -c "import torch; print('gpu_smoke:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
fi
start=$(date +%s)
"$PY" scripts/train.py --model wrn16_4_gc2l_n4 --dataset fmnist --device "$DEVICE" --amp bf16 --channels-last \
  --epochs 2 --lr-milestones 1 --batch-size 256 --workers "${SMOKE_WORKERS:-4}" --no-progress --no-tensorboard \
  --output "$OUT" "${LIMIT[@]}" "$@"
end=$(date +%s)
"$PY" - "$OUT" "$((end - start))" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
last = rows[-1]
steps = sum(r["train_samples"] for r in rows) // 256
print(f"gpu_smoke: {steps} steps, train {max(r['train_img_per_s'] for r in rows):.0f} img/s (best epoch), "
      f"test acc {last['test_acc']:.4f} on {last['test_samples']} images, wall {sys.argv[2]} s, run {sys.argv[1]}")
PYEOF
