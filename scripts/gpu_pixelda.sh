#!/usr/bin/env bash
# On the GPU machine (see docs/gpu.md): the report preset with three seeds in parallel, tarred into
# $OUT/pixelda.tar; evaluate afterwards with `python -m evaluation.pixelda --checkpoint-root ...` (CPU is fine).
# CPU check of the script: EXTRA=--dry-run PYTHON=.venv/bin/python OUT=/tmp scripts/gpu_pixelda.sh
set -euo pipefail
export NNDL_DATA_ROOT=${NNDL_DATA_ROOT:-.data} PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
mkdir -p runs
for seed in 0 1 2; do
  "$python" -m training.pixelda --preset report --seed "$seed" --run-dir "runs/pixelda-seed$seed" \
    --checkpoint-root "runs/pixelda-seed$seed/checkpoints" --max-minutes "${MINUTES:-6}" ${EXTRA:-} \
    > "runs/pixelda-seed$seed.log" 2>&1 &
done
wait
tar -cf "${OUT:-runs}/pixelda.tar" runs/pixelda-seed*/checkpoints runs/pixelda-seed*.log
