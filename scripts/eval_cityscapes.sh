#!/usr/bin/env bash
# Score cityscapes label -> photo translations with a DRN segmentation network (run after
# scripts/test_cityscapes.sh, which writes the generated photos of all 500 validation labels).
#
#   SEG_WEIGHTS=./drn_d_22_cityscapes.pth GTFINE=./gtFine/val bash scripts/eval_cityscapes.sh
#   SEG_NET=drn_d_105 SEG_WEIGHTS=./drn_d_105_cityscapes.pth GTFINE=./gtFine/val bash scripts/eval_cityscapes.sh
#   VARIANT=lsesim EPOCH=200 ... bash scripts/eval_cityscapes.sh --eval_size 256 512
#
# Weights: http://go.yf.io/drn-cityscapes-models (the DRN authors' Cityscapes models). Without
# GTFINE, the labels come from the colour maps of the aligned set (ALIGNED, default
# ./datasets/cityscapes/val), which JPEG compression makes approximate at class borders.
# Extra arguments go to scripts/eval_cityscapes.py. Prints per-pixel accuracy, per-class accuracy
# and mean IoU; writes segmentation_scores.json next to the photos.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
NAME=${NAME:-cityscapes_${VARIANT}}
EPOCH=${EPOCH:-latest}
SEG_NET=${SEG_NET:-drn_d_22}
SEG_WEIGHTS=${SEG_WEIGHTS:?set SEG_WEIGHTS to the segmentation network weights (see the comment above)}
GTFINE=${GTFINE:-}
ALIGNED=${ALIGNED:-./datasets/cityscapes/val}
GPU_IDS=${GPU_IDS:-}

LABEL_ARGS=(--aligned_dir "$ALIGNED")
if [ -n "$GTFINE" ]; then LABEL_ARGS=(--gtFine_dir "$GTFINE"); fi
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" scripts/eval_cityscapes.py --results_dir "./results/$NAME/val_$EPOCH/images/fake_B" \
  --seg_net "$SEG_NET" --seg_weights "$SEG_WEIGHTS" "${LABEL_ARGS[@]}" \
  ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
