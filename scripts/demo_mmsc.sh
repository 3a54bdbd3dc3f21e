#!/usr/bin/env bash
# The multi-modal demo: train mmsc (MUNIT networks + the spatially-correlative loss) on
# datasets/photo2multistyle on the CPU (about 10 minutes on 2 idle cores), sample STYLES style codes
# for every held-out photo, score diversity (LPIPS) and structure (luminance SSIM) beside those of
# the photos' real paintings (testB), translate them example-guided too, and write both figures.
# Needs the ImageNet VGG16 weights first: `python scripts/download_vgg16.py` (make demo-multi does both).
# LAMBDA_SPATIAL=0 NAME=demo_multistyle_l0 bash scripts/demo_mmsc.sh   # the ablation without the loss
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
NAME=${NAME:-demo_multistyle}
DATAROOT=${DATAROOT:-./datasets/photo2multistyle}
LAMBDA_SPATIAL=${LAMBDA_SPATIAL:-10}
EPOCHS=${EPOCHS:-20}
DECAY=${DECAY:-8}
STYLES=${STYLES:-6}
LR=${LR:-0.0002}
# A narrow MUNIT at 64 px: 16 filters, 2 residual blocks, a 64-wide style MLP; D of 3 scales, 4 layers.
ARCH=(--ngf 16 --ndf 16 --n_res 2 --mlp_dim 64)

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model mmsc --gpu_ids -1 "${ARCH[@]}" \
  --lambda_spatial "$LAMBDA_SPATIAL" --lr "$LR" --load_size 72 --crop_size 64 \
  --n_epochs "$EPOCHS" --n_epochs_decay "$DECAY" --num_threads 0 \
  --print_freq 200 --display_freq 400 --update_html_freq 400 --save_epoch_freq 10 "$@"
"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model mmsc --gpu_ids -1 \
  --load_size 64 --crop_size 64 --num_test 0 --n_styles "$STYLES" --results_dir ./results
"$PYTHON" scripts/score_multi.py --results "./results/$NAME/test_latest" --reference "$DATAROOT/testB" \
  --figure "./results/$NAME/multi_grid.jpg"
# Example-guided: every test photo in the style of each painting of one test photo (tree_0, not in the figure).
"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model mmsc --gpu_ids -1 \
  --load_size 64 --crop_size 64 --num_test 0 --style_image "$DATAROOT"/testB/tree_0_s*.jpg \
  --results_dir ./results/guided
"$PYTHON" scripts/score_multi.py --results "./results/guided/$NAME/test_latest" \
  --figure "./results/$NAME/guided_grid.jpg"
echo "training page: ./checkpoints/$NAME/web/index.html"
echo "results pages: ./results/$NAME/test_latest/index.html (sampled styles)"
echo "               ./results/guided/$NAME/test_latest/index.html (example-guided)"
