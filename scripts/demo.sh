#!/usr/bin/env bash
# The embedded demo: train FSeSim on datasets/photo2painting on the CPU (about 8 minutes on 2 idle cores),
# translate the held-out photos, score them against their painted ground truth, print the result page.
# Needs the ImageNet VGG16 weights first: `python scripts/download_vgg16.py` (make demo does both).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
NAME=${NAME:-demo_photo2painting}
DATAROOT=${DATAROOT:-./datasets/photo2painting}
EPOCHS=${EPOCHS:-16}
DECAY=${DECAY:-10}

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model sc --gpu_ids -1 \
  --netG resnet_6blocks --ngf 32 --ndf 32 --load_size 128 --crop_size 96 \
  --lr 0.0002 --n_epochs "$EPOCHS" --n_epochs_decay "$DECAY" --num_threads 0 \
  --print_freq 100 --display_freq 200 --update_html_freq 200 --save_epoch_freq 5 "$@"
"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model sc --gpu_ids -1 \
  --preprocess none --num_test 0 --results_dir ./results
"$PYTHON" scripts/score_demo.py --results "./results/$NAME/test_latest" --dataroot "$DATAROOT" \
  --figure "./results/$NAME/demo_grid.png"
echo "training page: ./checkpoints/$NAME/web/index.html"
echo "results page:  ./results/$NAME/test_latest/index.html"
