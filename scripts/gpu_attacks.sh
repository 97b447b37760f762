#!/usr/bin/env bash
# GPU run of the attacks lab (docs/helpers.md, "GPU training protocol"); about 7.5 minutes on one H100.
#   NNDL_DATA_ROOT=.data OUT=/some/empty/dir bash scripts/gpu_attacks.sh
# 1. the three ResNet-20s side by side: standard and Gaussian-noise 3 min, PGD adversarial training 4.3 min;
# 2. AdvGAN against the standard one (1.4 min) as soon as that one is done, while the classifiers are evaluated
#    (clean, FGSM and PGD-10 at 1/2/4/8 ⁄255 on all 10,000 test images, AutoAttack on 1,000 for the
#    adversarial one, capped at 100 s);
# 3. AdvGAN evaluated; checkpoints (fp16, cards with the measured metrics) tarred into $OUT/attacks.tar.
# ATTACKS_STAGE=advgan: only AdvGAN again (5 min + evaluation, ~6 min), against the standard ResNet-20 already
#   in checkpoints/, fine-tuning the committed generator when there is one (it reached 91.8 % against the
#   distilled model on the CPU, told the target's features; the target is 90 %); the tar then holds attacks-advgan only.
# ATTACKS_STAGE=distill: the whole distillation recipe on a GPU (not yet run on one): the distillation teacher
#   (ImageNet EfficientNet-Lite0 on the same split, 87.7 % after 12.6 CPU epochs, here ~30), then a standard
#   ResNet-20 distilled from it, then AdvGAN against that; all three evaluated and tarred.
# ATTACKS_DRY_RUN=1 checks the whole script on the CPU in about a minute (tiny data, tiny slices).
# torchattacks is pure Python: the evaluation imports it from the wheel in .whl/ when it is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to an empty output folder}"
export NNDL_DATA_ROOT="${NNDL_DATA_ROOT:-.data}"
PYTHON="${PYTHON:-python3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"  # up to four processes share 16 cores
CHECKPOINTS="${ATTACKS_CHECKPOINT_ROOT:-checkpoints}"
[ -z "${ATTACKS_DRY_RUN:-}" ] || CHECKPOINTS="${ATTACKS_CHECKPOINT_ROOT:-$OUT/dry-run-checkpoints}"  # never over the trained ones
LOGS="$OUT/attacks-logs"
mkdir -p "$LOGS" "$CHECKPOINTS"

if ! "$PYTHON" -c "import torchattacks" 2>/dev/null; then
  wheel=$(ls .whl/torchattacks-*.whl 2>/dev/null | head -1 || true)
  [ -n "$wheel" ] || { echo "torchattacks is missing: put torchattacks-3.5.1-py3-none-any.whl in .whl/" >&2; exit 1; }
  export PYTHONPATH="$PWD/$wheel${PYTHONPATH:+:$PYTHONPATH}"  # a pure-Python wheel imports straight from its zip
fi

if [ -n "${ATTACKS_DRY_RUN:-}" ]; then
  TRAIN=(--dry-run)
  RESNET_MINUTES=0.5; ADVERSARIAL_MINUTES=0.5; ADVGAN_MINUTES=0.5; ADVGAN_ALONE_MINUTES=0.5; TEACHER_MINUTES=0.5
  EVALUATE=(--per-class 2 --autoattack-images 10 --batch-size 10 --timing-images 8)
else
  TRAIN=(--preset gpu)
  RESNET_MINUTES=3.0; ADVERSARIAL_MINUTES=4.3; ADVGAN_MINUTES=1.4; ADVGAN_ALONE_MINUTES=5; TEACHER_MINUTES=4
  EVALUATE=(--autoattack-seconds 100)
fi
train() {  # train <model> [flags...]: one run, its log in $LOGS
  local model=$1; shift
  "$PYTHON" -m training.attacks "${TRAIN[@]}" --model "$model" --checkpoint-root "$CHECKPOINTS" "$@" > "$LOGS/train-$model.log" 2>&1
}
evaluate() {  # evaluate <log name> <checkpoint>...
  local log=$1; shift
  "$PYTHON" -m evaluation.attacks "${EVALUATE[@]}" --checkpoint-root "$CHECKPOINTS" --checkpoints "$@" > "$LOGS/evaluate-$log.log" 2>&1
}
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*"; }
status=0
check() {  # check <pid> <log name>: wait for a job, show its log's end if it failed
  wait "$1" || { status=1; echo "FAILED: $2" >&2; tail -25 "$LOGS/$2.log" >&2; }
}

if [ "${ATTACKS_STAGE:-all}" = distill ]; then
  stamp "distillation teacher: ImageNet EfficientNet-Lite0 fine-tuned at 128 px"
  if [ -n "${ATTACKS_DRY_RUN:-}" ]; then TEACHER=(--preset teacher --dry-run); else TEACHER=(--preset teacher --precision bf16 --batch-size 128 --learning-rate 0.03 --steps 3400); fi
  "$PYTHON" -m training.attacks "${TEACHER[@]}" --checkpoint-root "$CHECKPOINTS" --max-minutes "$TEACHER_MINUTES" > "$LOGS/train-teacher.log" 2>&1 \
    || { tail -25 "$LOGS/train-teacher.log" >&2; exit 1; }
  evaluate teacher attacks-efficientnet-lite0-standard --epsilons || status=1
  stamp "standard ResNet-20 distilled from it (16 mixup views of each image)"
  train standard --distill-from attacks-efficientnet-lite0-standard --distill-views 16 --distill-mixup 1.0 --max-minutes "$RESNET_MINUTES" \
    || { tail -25 "$LOGS/train-standard.log" >&2; exit 1; }
  stamp "AdvGAN against the distilled model, while that one is evaluated"
  evaluate standard attacks-resnet20-standard & evaluate_standard=$!
  train advgan --steps 30000 --max-minutes "$ADVGAN_ALONE_MINUTES" || { status=1; tail -25 "$LOGS/train-advgan.log" >&2; }
  evaluate advgan attacks-advgan || status=1
  check $evaluate_standard evaluate-standard
  tar -cf "$OUT/attacks.tar" -C "$(dirname "$CHECKPOINTS")" $(for name in attacks-efficientnet-lite0-standard attacks-resnet20-standard attacks-advgan; do echo "$(basename "$CHECKPOINTS")/$name"; done)
  grep -h -E "clean|success rate|steps," "$LOGS"/*.log | grep -v "it/s" || true
  stamp "done: $(du -h "$OUT/attacks.tar" | cut -f1) in $OUT/attacks.tar"
  exit $status
fi

if [ "${ATTACKS_STAGE:-all}" = advgan ]; then
  # AdvGAN alone (~6 min), full-resolution generator, against the attacks-resnet20-standard already in
  # checkpoints/ (the first run's AdvGAN_pytorch-layout generator plateaued at 35 % success).
  [ -e "$CHECKPOINTS/attacks-resnet20-standard/model.safetensors" ] || { echo "needs $CHECKPOINTS/attacks-resnet20-standard" >&2; exit 1; }
  stamp "AdvGAN alone, against the existing standard ResNet-20"
  FINE_TUNE=()  # from the committed generator at the CPU fine-tunes' learning rate, when there is one (a dry run's
  # generator is too small to take its weights)
  [ -n "${ATTACKS_DRY_RUN:-}" ] || [ ! -e "$CHECKPOINTS/attacks-advgan/model.safetensors" ] || FINE_TUNE=(--init-from attacks-advgan --generator-learning-rate 2e-4)
  train advgan --steps 30000 --max-minutes "$ADVGAN_ALONE_MINUTES" "${FINE_TUNE[@]}" || { status=1; tail -25 "$LOGS/train-advgan.log" >&2; }
  stamp "evaluating it"
  evaluate advgan attacks-advgan || { status=1; tail -25 "$LOGS/evaluate-advgan.log" >&2; }
  tar -cf "$OUT/attacks.tar" -C "$(dirname "$CHECKPOINTS")" "$(basename "$CHECKPOINTS")/attacks-advgan"
  grep -h -E "success rate|steps," "$LOGS"/*.log | grep -v "it/s" || true
  stamp "done: $(du -h "$OUT/attacks.tar" | cut -f1) in $OUT/attacks.tar (attacks-advgan only)"
  exit $status
fi

stamp "training the three ResNet-20s (adversarial: PGD-4, no AutoAugment, a longer budget)"
train standard --max-minutes "$RESNET_MINUTES" & standard=$!
train noise --max-minutes "$RESNET_MINUTES" & noise=$!
train adversarial --max-minutes "$ADVERSARIAL_MINUTES" --autoaugment-groups 0 & adversarial=$!
check $standard train-standard
stamp "standard done: AdvGAN starts against it"
train advgan --steps 20000 --max-minutes "$ADVGAN_MINUTES" & advgan=$!
check $noise train-noise
stamp "noise done: evaluating standard and noise"
evaluate standard-noise attacks-resnet20-standard attacks-resnet20-noise & evaluate_first=$!
check $adversarial train-adversarial
stamp "adversarial done: evaluating it (AutoAttack on 1,000 images)"
evaluate adversarial attacks-resnet20-adversarial & evaluate_adversarial=$!
check $advgan train-advgan
stamp "AdvGAN done: evaluating it"
evaluate advgan attacks-advgan & evaluate_advgan=$!
check $evaluate_first evaluate-standard-noise
check $evaluate_advgan evaluate-advgan
check $evaluate_adversarial evaluate-adversarial
stamp "evaluations done"

names=$(cd "$CHECKPOINTS" && ls -d attacks-resnet20-standard attacks-resnet20-noise attacks-resnet20-adversarial attacks-advgan 2>/dev/null || true)
tar -cf "$OUT/attacks.tar" -C "$(dirname "$CHECKPOINTS")" $(for name in $names; do echo "$(basename "$CHECKPOINTS")/$name"; done)
grep -h -E "clean|success rate|AutoAttack|steps," "$LOGS"/*.log | grep -v "it/s" || true
stamp "done: $(du -h "$OUT/attacks.tar" | cut -f1) in $OUT/attacks.tar"
exit $status
