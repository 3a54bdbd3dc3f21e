#!/usr/bin/env bash
# Translate the horse2zebra test set with a model trained by scripts/train_sc.sh.
#
#   bash scripts/test_sc.sh                          # the FSeSim run (checkpoints/h2z_fsesim)
#   VARIANT=lsesim bash scripts/test_sc.sh           # the LSeSim run (checkpoints/h2z_lsesim)
#   bash scripts/test_sc.sh --num_test 0 --epoch 200  # extra arguments go to test.py
#
# The generator's architecture is read from checkpoints/$NAME/opt.json. Results:
# ./results/$NAME/test_latest/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/horse2zebra}
NAME=${NAME:-h2z_${VARIANT}}
GPU_IDS=${GPU_IDS:-}

case "$VARIANT" in
  fsesim|lsesim) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim or lsesim" >&2; exit 2 ;;
esac
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model sc \
  ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
