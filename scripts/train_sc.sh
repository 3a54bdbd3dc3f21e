#!/usr/bin/env bash
# Train the `sc` model on horse2zebra (unpaired horse -> zebra).
#
#   bash scripts/train_sc.sh                         # FSeSim: fixed VGG16 self-similarity (the default)
#   VARIANT=lsesim bash scripts/train_sc.sh          # LSeSim: learned 1x1 heads
#   GPU_IDS=0 bash scripts/train_sc.sh --n_epochs 100   # extra arguments go to train.py
#
# Get the data with `bash datasets/download_cyclegan_dataset.sh horse2zebra`. Every variable
# below can be set from the environment; GPU_IDS unset lets train.py pick the first CUDA device
# (or the CPU). Checkpoints go to ./checkpoints/$NAME, resume with `--continue_train`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/horse2zebra}
NAME=${NAME:-h2z_${VARIANT}}
GPU_IDS=${GPU_IDS:-}

case "$VARIANT" in
  fsesim) VARIANT_ARGS=() ;;
  # LSeSim learns the self-similarity heads contrastively; they need colour-jittered copies of the
  # inputs (--augment), and the paper's LSeSim runs use local 32x32 key windows.
  lsesim) VARIANT_ARGS=(--learned_attn --augment --patch_size 32) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim or lsesim" >&2; exit 2 ;;
esac
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model sc \
  --attn_layers 4,7,9 --lambda_spatial 10 --loss_mode cos --patch_nums 256 \
  ${VARIANT_ARGS[@]+"${VARIANT_ARGS[@]}"} ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
