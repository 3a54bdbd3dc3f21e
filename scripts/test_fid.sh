#!/usr/bin/env bash
# FID (plus KID and density & coverage) of every saved epoch of a run from scripts/train_sc.sh,
# against all real test B images. Writes ./results/$NAME/fid_test/fid.csv and fid.png and prints
# the best epoch.
#
#   bash scripts/test_fid.sh                                     # FSeSim run, pytorch-fid's Inception
#   VARIANT=lsesim bash scripts/test_fid.sh
#   INCEPTION_WEIGHTS=./pt_inception-2015-12-05-6726825d.pth bash scripts/test_fid.sh   # no download
#   FEATURES=efficientnet_lite0 bash scripts/test_fid.sh         # offline; NOT comparable with papers
#   bash scripts/test_fid.sh --epochs 100,200 --prdc_k 95        # extra arguments go to test_fid.py
#
# The Inception weights are pytorch-fid's (downloaded into the torch hub cache when online). The
# EfficientNet-Lite0 weights come from `python scripts/download_efficientnet_lite0.py`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/horse2zebra}
NAME=${NAME:-h2z_${VARIANT}}
FEATURES=${FEATURES:-inception}
INCEPTION_WEIGHTS=${INCEPTION_WEIGHTS:-}
GPU_IDS=${GPU_IDS:-}

case "$VARIANT" in
  fsesim|lsesim) ;;
  *) echo "error: VARIANT=$VARIANT: choose fsesim or lsesim" >&2; exit 2 ;;
esac
EXTRA=()
if [ -n "$INCEPTION_WEIGHTS" ]; then EXTRA+=(--inception_weights "$INCEPTION_WEIGHTS"); fi
if [ -n "$GPU_IDS" ]; then EXTRA+=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" test_fid.py --dataroot "$DATAROOT" --name "$NAME" --model sc --features "$FEATURES" \
  ${EXTRA[@]+"${EXTRA[@]}"} "$@"
