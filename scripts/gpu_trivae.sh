#!/usr/bin/env bash
# GPU run of the brain-tumour residual-map system (docs/helpers.md, "GPU training protocol").
# From the repo root: NNDL_DATA_ROOT=.data OUT=/some/empty/dir bash scripts/gpu_trivae.sh
# Needs brain/lgg_flair and brain/brats21_slices under $NNDL_DATA_ROOT. TRIVAE_DRY_RUN=1 checks the script on a CPU
# (tiny generated data, a few steps, a throw-away checkpoint folder).
# Four 128 px models train in parallel (the `cpu` preset, more steps, stopped by --max-minutes), then the
# evaluation command writes the metrics into their cards, then the fp16 checkpoints go into three tars < 16 MB.
set -euo pipefail
: "${OUT:?set OUT to an empty output folder}"
export NNDL_DATA_ROOT="${NNDL_DATA_ROOT:-.data}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT/logs"
if [[ "${TRIVAE_DRY_RUN:-0}" == "1" ]]; then
  ROOT="$(mktemp -d)/checkpoints"; EXTRA=(--dry-run); EVAL=(--limit 8)
  TRAIN_MINUTES=1
else
  ROOT=checkpoints; EXTRA=(--steps 20000 --batch-size 32 --eval-every 250 --save-every 1000 --log-every 50); EVAL=()
  TRAIN_MINUTES="${TRIVAE_TRAIN_MINUTES:-5.0}"
fi
start=$(date +%s)
runs=("vae none" "vae coarse" "trivae coarse" "trivae simplex")
pids=()
for spec in "${runs[@]}"; do
  read -r model noise <<<"$spec"
  "$PYTHON" -m training.trivae --model "$model" --noise "$noise" --max-minutes "$TRAIN_MINUTES" \
    --checkpoint-root "$ROOT" --run-dir "$(dirname "$ROOT")/runs/trivae-$model-$noise" "${EXTRA[@]}" \
    >"$OUT/logs/train-$model-$noise.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "training finished in $(( $(date +%s) - start )) s (status $status)"
for log in "$OUT"/logs/train-*.log; do echo "== $log"; tail -c 600 "$log" | tr '\r' '\n' | tail -n 3; done
[[ $status == 0 ]] || exit 1
"$PYTHON" -m evaluation.trivae --checkpoint-root "$ROOT" "${EVAL[@]}" 2>&1 | tee "$OUT/logs/evaluate.log"
echo "total $(( $(date +%s) - start )) s"
cd "$ROOT/.."
tar -cf "$OUT/trivae-1.tar" "checkpoints/trivae-trivae-coarse"
tar -cf "$OUT/trivae-2.tar" "checkpoints/trivae-trivae-simplex"
tar -cf "$OUT/trivae-3.tar" "checkpoints/trivae-vae" "checkpoints/trivae-vae-coarse"
ls -l "$OUT"/*.tar
