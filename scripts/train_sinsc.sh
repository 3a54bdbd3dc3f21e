#!/usr/bin/env bash
# Train the single-image model `sinsc`: one photo, one painting, the photo painted in the painting's manner.
#
#   PHOTO=me.jpg PAINTING=monet.jpg NAME=me_monet bash scripts/train_sinsc.sh   # any pair of images
#   bash scripts/train_sinsc.sh                       # the embedded pair (datasets/single_demo: home + Starry Night)
#   DATAROOT=./datasets/my_pair bash scripts/train_sinsc.sh   # a folder with one image in trainA and one in trainB
#   GPU_IDS=0 bash scripts/train_sinsc.sh --n_epochs 2       # extra arguments go to train.py
#
# With PHOTO and PAINTING set, the pair is copied into $PAIRS_DIR/$NAME/{trainA,trainB}
# (PAIRS_DIR defaults to ./datasets/single_pairs).
# The flags below are the model's defaults spelled out (published: 4 + 4 epochs of 100,000 crops of 128
# pixels, batch 16: hours on one GPU). On a CPU see scripts/demo_sinsc.sh for a 10-minute setting.
# Checkpoints go to ./checkpoints/$NAME; translate the whole photo with scripts/test_sinsc.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
NAME=${NAME:-single_demo}
PHOTO=${PHOTO:-}
PAINTING=${PAINTING:-}
DATAROOT=${DATAROOT:-./datasets/single_demo}
GPU_IDS=${GPU_IDS:-}
PAIRS_DIR=${PAIRS_DIR:-./datasets/single_pairs}

if [ -n "$PHOTO" ] || [ -n "$PAINTING" ]; then
  if [ -z "$PHOTO" ] || [ -z "$PAINTING" ]; then
    echo "error: set both PHOTO and PAINTING (or neither, to use DATAROOT=$DATAROOT)" >&2; exit 2
  fi
  for image in "$PHOTO" "$PAINTING"; do
    [ -f "$image" ] || { echo "error: PHOTO/PAINTING: $image is not a file" >&2; exit 2; }
  done
  case "$NAME" in */*|.*|"") echo "error: NAME=$NAME: use a plain name (no '/', not starting with '.')" >&2; exit 2 ;; esac
  DATAROOT=$PAIRS_DIR/$NAME
  rm -rf "$DATAROOT/trainA" "$DATAROOT/trainB"
  mkdir -p "$DATAROOT/trainA" "$DATAROOT/trainB"
  cp "$PHOTO" "$DATAROOT/trainA/"
  cp "$PAINTING" "$DATAROOT/trainB/"
fi
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model sinsc \
  --dataset_mode singleimage --preprocess zoom_and_patch --crop_size 128 --random_scale_max 3 --batch_size 16 \
  --netG stylegan2 --netD stylegan2 --ngf 8 --ndf 8 \
  --gan_mode nonsaturating --lambda_gradient 1 --lambda_spatial 10 --attn_layers 4,7,9 \
  --lr 0.001 --beta1 0 --beta2 0.99 --n_epochs 4 --n_epochs_decay 4 --save_epoch_freq 1 --pool_size 0 \
  ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
