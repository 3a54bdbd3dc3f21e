#!/usr/bin/env bash
# Translate the cityscapes validation label maps into photos with a model trained by
# scripts/train_cityscapes.sh (all 500 images: --num_test 0).
#
#   bash scripts/test_cityscapes.sh
#   VARIANT=lsesim bash scripts/test_cityscapes.sh --epoch 200   # extra arguments go to test.py
#
# Results: ./results/$NAME/val_latest/images/fake_B/*.png (to score with a segmentation network)
# and index.html.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/cityscapes}
NAME=${NAME:-cityscapes_${VARIANT}}
GPU_IDS=${GPU_IDS:-}

case "$VARIANT" in
  fsesim|lsesim) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim or lsesim" >&2; exit 2 ;;
esac
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model sc \
  --dataset_mode aligned --direction BtoA --phase val --load_size 256 --crop_size 256 --num_test 0 \
  ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
