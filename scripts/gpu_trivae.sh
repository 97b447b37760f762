#!/usr/bin/env bash
# GPU run of the brain-tumour residual-map system (docs/helpers.md, "GPU training protocol").
# From the repo root: NNDL_DATA_ROOT=.data OUT=/some/empty/dir bash scripts/gpu_trivae.sh
# Needs brain/lgg_flair and brain/brats21_slices under $NNDL_DATA_ROOT. TRIVAE_DRY_RUN=1 checks the script on a CPU
# (tiny generated data, a few steps, a throw-away checkpoint folder).
#
# TRIVAE_STAGE=scratch: four 128 px models from scratch, 5 min each in parallel (σ 0.2 noise). This made the
#   committed checkpoints (22 Nov, 16:43); the two Tri-VAEs were then fine-tuned 150 steps on the CPU with stronger
#   noise (σ 0.5 coarse, 0.4 simplex), see docs/trivae.md.
# TRIVAE_STAGE=refine (default, for the next GPU slot): all four continue from the committed checkpoints for 5 min
#   more (--init-from, like the report's 10 + 10 epochs), the denoisers with the stronger noise (the σ 0.2 denoiser
#   copied tumours through its skips). Then the evaluation command writes the metrics into the cards and the fp16
#   checkpoints go into three tars < 16 MB.
set -euo pipefail
: "${OUT:?set OUT to an empty output folder}"
export NNDL_DATA_ROOT="${NNDL_DATA_ROOT:-.data}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PYTHON="${PYTHON:-python3}"
STAGE="${TRIVAE_STAGE:-refine}"
mkdir -p "$OUT/logs"
if [[ "${TRIVAE_DRY_RUN:-0}" == "1" ]]; then
  ROOT="$(mktemp -d)/checkpoints"; EXTRA=(--dry-run); EVAL=(--limit 8); TRAIN_MINUTES=1
  if [[ "$STAGE" == "refine" ]]; then  # parents for --init-from: a dry-run scratch stage first
    TRIVAE_STAGE=scratch TRIVAE_ROOT="$ROOT" OUT="$OUT/scratch" bash "$0" >/dev/null
  fi
else
  ROOT=checkpoints; EXTRA=(--steps 20000 --batch-size 32 --eval-every 250 --save-every 1000 --log-every 50); EVAL=()
  TRAIN_MINUTES="${TRIVAE_TRAIN_MINUTES:-5.0}"
fi
ROOT="${TRIVAE_ROOT:-$ROOT}"
start=$(date +%s)
if [[ "$STAGE" == "refine" ]]; then
  runs=("vae none 0.2 trivae-vae" "vae coarse 0.5 trivae-vae-coarse" "trivae coarse 0.5 trivae-trivae-coarse" "trivae simplex 0.4 trivae-trivae-simplex")
else
  runs=("vae none 0.2 -" "vae coarse 0.2 -" "trivae coarse 0.2 -" "trivae simplex 0.2 -")
fi
pids=()
for spec in "${runs[@]}"; do
  read -r model noise sigma parent <<<"$spec"
  init=(); [[ "$parent" != "-" ]] && init=(--init-from "$parent")
  "$PYTHON" -m training.trivae --model "$model" --noise "$noise" --noise-sigma "$sigma" "${init[@]}" \
    --max-minutes "$TRAIN_MINUTES" --checkpoint-root "$ROOT" --run-dir "$(dirname "$ROOT")/runs/trivae-$STAGE-$model-$noise" \
    "${EXTRA[@]}" >"$OUT/logs/train-$STAGE-$model-$noise.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "training ($STAGE) finished in $(( $(date +%s) - start )) s (status $status)"
for log in "$OUT"/logs/train-*.log; do echo "== $log"; tail -c 600 "$log" | tr '\r' '\n' | tail -n 3; done
[[ $status == 0 ]] || exit 1
[[ -n "${TRIVAE_ROOT:-}" && "$STAGE" == "scratch" ]] && exit 0  # the dry-run parents only
"$PYTHON" -m evaluation.trivae --checkpoint-root "$ROOT" "${EVAL[@]}" 2>&1 | tee "$OUT/logs/evaluate.log"
echo "total $(( $(date +%s) - start )) s"
cd "$ROOT/.."
tar -cf "$OUT/trivae-1.tar" "checkpoints/trivae-trivae-coarse"
tar -cf "$OUT/trivae-2.tar" "checkpoints/trivae-trivae-simplex"
tar -cf "$OUT/trivae-3.tar" "checkpoints/trivae-vae" "checkpoints/trivae-vae-coarse"
ls -l "$OUT"/*.tar
