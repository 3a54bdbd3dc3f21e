#!/usr/bin/env bash
# Translate a test split with a model trained by scripts/train_mmsc.sh: K sampled styles per input.
#
#   bash scripts/test_mmsc.sh                                  # 10 styles per summer photo
#   N_STYLES=4 bash scripts/test_mmsc.sh --direction BtoA      # winter -> summer, 4 styles
#   bash scripts/test_mmsc.sh --style_image ./my_winter.jpg    # example-guided: that image's style
#
# The networks' architecture is read from checkpoints/$NAME/opt.json; the style codes are drawn
# from N(0, I) with --seed (the same codes for every input). Results:
# ./results/$NAME/test_latest/index.html (one row per input: input | outputs); score diversity and
# structure with `python scripts/score_multi.py --results ./results/$NAME/test_latest`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VARIANT=${VARIANT:-fsesim}
DATAROOT=${DATAROOT:-./datasets/summer2winter_yosemite}
NAME=${NAME:-s2w_mmsc_${VARIANT}}
GPU_IDS=${GPU_IDS:-}
N_STYLES=${N_STYLES:-10}
GPU_ARGS=()
if [ -n "$GPU_IDS" ]; then GPU_ARGS=(--gpu_ids "$GPU_IDS"); fi

"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model mmsc --load_size 256 --crop_size 256 \
  --n_styles "$N_STYLES" --num_test 0 ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "$@"
