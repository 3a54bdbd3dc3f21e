#!/usr/bin/env bash
# Train the `sc` model for cityscapes label map -> photo.
#
#   bash scripts/train_cityscapes.sh                  # FSeSim
#   VARIANT=lsesim bash scripts/train_cityscapes.sh   # LSeSim
#
# Data: the pix2pix-style aligned set (photo | colour label map, side by side in train/ and val/),
# made by `python datasets/prepare_cityscapes_dataset.py --gtFine_dir ... --leftImg8bit_dir ...
# --output_dir ./datasets/cityscapes` or downloaded with
# `bash datasets/download_cyclegan_dataset.sh cityscapes`. --direction BtoA makes the label map
# (right half) the input. Training is unpaired in spirit: only the spatial loss looks at the input,
# the discriminator sees real photos, so the pairing is never used as supervision.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/cityscapes}
NAME=${NAME:-cityscapes_${VARIANT}}
GPU_IDS=${GPU_IDS:-}

case "$VARIANT" in
  fsesim) VARIANT_ARGS=() ;;
  # LSeSim: learned heads trained on colour-jittered copies, local 32x32 key windows.
  lsesim) VARIANT_ARGS=(--learned_attn --augment --patch_size 32) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim or lsesim" >&2; exit 2 ;;
esac
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model sc \
  --dataset_mode aligned --direction BtoA --load_size 286 --crop_size 256 \
  --attn_layers 4,7,9 --lambda_spatial 10 --loss_mode cos --patch_nums 256 \
  ${VARIANT_ARGS[@]+"${VARIANT_ARGS[@]}"} ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
