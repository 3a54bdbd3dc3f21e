#!/usr/bin/env bash
# Translate the whole photo (at its own size) with a model trained by scripts/train_sinsc.sh.
#
#   NAME=me_monet bash scripts/test_sinsc.sh          # the run's training photo ($PAIRS_DIR/$NAME, else DATAROOT)
#   PHOTO=other.jpg NAME=me_monet bash scripts/test_sinsc.sh   # any other photo, any size
#   bash scripts/test_sinsc.sh --epoch 4              # extra arguments go to test.py
#
# The architecture comes from checkpoints/$NAME/opt.json. Results: ./results/$NAME/test_latest/index.html,
# the painted photo in ./results/$NAME/test_latest/images/fake_B/.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
NAME=${NAME:-single_demo}
PHOTO=${PHOTO:-}
GPU_IDS=${GPU_IDS:-}
PAIRS_DIR=${PAIRS_DIR:-./datasets/single_pairs}
if [ -d "$PAIRS_DIR/$NAME" ]; then DEFAULT_ROOT=$PAIRS_DIR/$NAME; else DEFAULT_ROOT=./datasets/single_demo; fi
DATAROOT=${DATAROOT:-$DEFAULT_ROOT}

DATA_ARGS=(--dataroot "$DATAROOT" --dataset_mode singleimage)
if [ -n "$PHOTO" ]; then
  [ -f "$PHOTO" ] || { echo "error: PHOTO: $PHOTO is not a file" >&2; exit 2; }
  case "$NAME" in */*|.*|"") echo "error: NAME=$NAME: use a plain name (no '/', not starting with '.')" >&2; exit 2 ;; esac
  PHOTO_DIR=$PAIRS_DIR/$NAME/photos
  rm -rf "$PHOTO_DIR" && mkdir -p "$PHOTO_DIR" && cp "$PHOTO" "$PHOTO_DIR/"
  DATA_ARGS=(--dataroot "$PHOTO_DIR" --dataset_mode single)
fi
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" test.py "${DATA_ARGS[@]}" --name "$NAME" --model sinsc --preprocess none --num_test 1 \
  ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
