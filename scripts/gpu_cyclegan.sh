#!/usr/bin/env bash
# CycleGAN on the GPU machine (one H100): both datasets trained in parallel, measured, packed.
#
#   NNDL_DATA_ROOT=.data OUT=/some/empty/dir bash scripts/gpu_cyclegan.sh
#   CYCLEGAN_GPU_DRY_RUN=1 OUT=/tmp/out bash scripts/gpu_cyclegan.sh    # CPU check: tiny models, generated data
#
# Each run is the `report` preset (128 px, 20 epochs = 10 constant + 10 linear decay, batch 1) with a 32-filter
# generator (the app's 256 px CPU latency target and the checkpoint size budget), `--fit-to-time`: after timing
# its first steps, a run that cannot finish 20 epochs in --max-minutes shrinks its schedule proportionally and
# its card records the epochs trained. Everything ends within ~7.5 minutes: 6.3 min of training (counted from
# process start), then the L1 evaluation on the GPU (--no-judge: the EfficientNet-Lite0 weights are not on this
# machine; the judge and KID are measured afterwards on the CPU with `python -m evaluation.cyclegan`).
# Output: $OUT/cyclegan-1.tar, cyclegan-2.tar, cyclegan-3.tar (each < 16 MB; unpack all three from the repo
# root) and the training logs.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to an empty output folder}"
export PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
MINUTES="${CYCLEGAN_MINUTES:-6.3}"
CHECKPOINTS=checkpoints
EXTRA=()
EVAL_EXTRA=()
if [[ "${CYCLEGAN_GPU_DRY_RUN:-0}" == 1 ]]; then
  CHECKPOINTS="$OUT/dry-checkpoints"
  EXTRA=(--dry-run --calibration-steps 2)
  EVAL_EXTRA=(--limit 4)
  MINUTES=1
else
  export NNDL_DATA_ROOT="${NNDL_DATA_ROOT:-.data}"
fi
export NNDL_CHECKPOINTS="$CHECKPOINTS"
mkdir -p "$OUT" "$CHECKPOINTS"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

pids=()
for dataset in apple2orange summer2winter; do
  "$PYTHON" -m training.cyclegan --preset report --dataset "$dataset" --filters 32 \
    --fit-to-time --max-minutes "$MINUTES" --run-dir "runs/cyclegan-$dataset-gpu" \
    --checkpoint-root "$CHECKPOINTS" "${EXTRA[@]}" >"$OUT/train-$dataset.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
tail -n 3 "$OUT"/train-*.log
if [[ $status != 0 ]]; then echo "a training run failed; see $OUT/train-*.log" >&2; exit 1; fi

pids=()
for dataset in apple2orange summer2winter; do
  "$PYTHON" -m evaluation.cyclegan --dataset "$dataset" --no-judge --checkpoint-root "$CHECKPOINTS" "${EVAL_EXTRA[@]}" >"$OUT/eval-$dataset.log" 2>&1 &
  pids+=($!)
done
eval_status=0
for pid in "${pids[@]}"; do wait "$pid" || eval_status=1; done
cat "$OUT"/eval-*.log
# A failed evaluation still packs the weights (the CPU evaluation can redo it); the exit status reports it.

# Three tars, each < 16 MB: a 32-filter generator pair is 7.9 MB in fp16, an int8 snapshot pair 3.9 MB.
existing() { for file in "$@"; do [[ -e "$file" ]] && echo "$file"; done; return 0; }
main_files() { local d="$CHECKPOINTS/cyclegan-$1"; existing "$d/config.json" "$d/model.safetensors" "$d/card.json" "$d/log.csv" "$d/snapshot-early.safetensors"; }
# shellcheck disable=SC2046
tar -cf "$OUT/cyclegan-1.tar" $(main_files apple2orange)
# shellcheck disable=SC2046
tar -cf "$OUT/cyclegan-2.tar" $(main_files summer2winter)
# shellcheck disable=SC2046
tar -cf "$OUT/cyclegan-3.tar" $(existing "$CHECKPOINTS"/cyclegan-{apple2orange,summer2winter}/snapshot-middle.safetensors)
ls -l "$OUT"/*.tar
if [[ $eval_status != 0 ]]; then echo "the GPU evaluation failed (see $OUT/eval-*.log); the checkpoints are packed anyway" >&2; exit 2; fi
