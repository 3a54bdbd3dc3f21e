#!/usr/bin/env bash
# Train the multi-modal `mmsc` model (MUNIT networks + the spatially-correlative loss) on a
# two-folder dataset, with MUNIT's published schedule.
#
#   bash scripts/train_mmsc.sh                       # summer2winter_yosemite, FSeSim
#   VARIANT=lsesim bash scripts/train_mmsc.sh        # learned heads (LSeSim)
#   VARIANT=cycle bash scripts/train_mmsc.sh         # the ablation: MUNIT's style-augmented cycle, no spatial loss
#   DATAROOT=./datasets/afhq_cat2dog NAME=c2d_mmsc bash scripts/train_mmsc.sh   # AFHQ laid out as trainA/trainB
#   GPU_IDS=0 bash scripts/train_mmsc.sh --batch_size 1   # extra arguments go to train.py
#
# Get the data with `bash datasets/download_cyclegan_dataset.sh summer2winter_yosemite`.
# MUNIT's schedule (configs/*.yaml of the MUNIT code): batch 1, 256x256 crops of images resized to
# 256, Adam lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, 1,000,000 iterations, the learning
# rate halved every 100,000 iterations, a snapshot every 10,000. This framework schedules by
# epochs (one epoch = max(|trainA|, |trainB|) steps at batch 1), so the script converts: the run
# stops at exactly --max_iters 1000000 and the step decay comes every round(100000 / steps per
# epoch) epochs. Checkpoints go to ./checkpoints/$NAME; resume with `--continue_train`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/summer2winter_yosemite}
NAME=${NAME:-s2w_mmsc_${VARIANT}}
GPU_IDS=${GPU_IDS:-}
MAX_ITERS=${MAX_ITERS:-1000000}
DECAY_EVERY=${DECAY_EVERY:-100000}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-10000}

case "$VARIANT" in
  fsesim) VARIANT_ARGS=(--lambda_spatial 10) ;;
  lsesim) VARIANT_ARGS=(--lambda_spatial 10 --learned_attn --augment --patch_size 32) ;;
  cycle) VARIANT_ARGS=(--lambda_spatial 0 --lambda_cycle 10) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim, lsesim or cycle" >&2; exit 2 ;;
esac
for split in trainA trainB; do
  [ -d "$DATAROOT/$split" ] || { echo "error: $DATAROOT/$split does not exist (see the header of $0)" >&2; exit 2; }
done
count() { find "$1" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.bmp' \
  -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.webp' \) | wc -l; }
A=$(count "$DATAROOT/trainA"); B=$(count "$DATAROOT/trainB")
PER_EPOCH=$(( A > B ? A : B ))
[ "$PER_EPOCH" -gt 0 ] || { echo "error: no images in $DATAROOT/trainA or trainB" >&2; exit 2; }
EPOCHS=$(( (MAX_ITERS + PER_EPOCH - 1) / PER_EPOCH ))
STEP=$(( (DECAY_EVERY + PER_EPOCH / 2) / PER_EPOCH )); [ "$STEP" -ge 1 ] || STEP=1
SAVE=$(( (SNAPSHOT_EVERY + PER_EPOCH / 2) / PER_EPOCH )); [ "$SAVE" -ge 1 ] || SAVE=1
echo "$PER_EPOCH steps per epoch: $EPOCHS epochs, rate x0.5 every $STEP epochs, a checkpoint every $SAVE"
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model mmsc \
  --load_size 256 --crop_size 256 --batch_size 1 --lr 0.0001 --beta1 0.5 --beta2 0.999 --weight_decay 0.0001 \
  --lr_policy step --lr_decay_iters "$STEP" --lr_decay_gamma 0.5 --n_epochs "$EPOCHS" --n_epochs_decay 0 \
  --max_iters "$MAX_ITERS" --save_epoch_freq "$SAVE" \
  "${VARIANT_ARGS[@]}" ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
