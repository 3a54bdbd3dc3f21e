#!/usr/bin/env bash
# The single-image demo: paint the embedded photo (datasets/single_demo/trainA/home.jpg) in the manner of
# Van Gogh's Starry Night (trainB) with `--model sinsc`, on the CPU in about 4 minutes on 2 idle cores, then
# translate the whole photo at its full size and write an HTML page. `make demo-single` gets the VGG16
# weights first (python scripts/download_vgg16.py).
#
#   bash scripts/demo_sinsc.sh                      # the demo
#   CROPS=4000 bash scripts/demo_sinsc.sh           # train longer (crops per epoch; 2 epochs)
#   bash scripts/demo_sinsc.sh --lr 0.002           # extra arguments go to train.py
#
# The demo keeps the model's defaults except the schedule, which is cut to fit a CPU: 2 epochs of
# $CROPS crops of $CROP pixels in batches of $BATCH instead of 8 epochs of 100,000 crops of 128 in 16.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
NAME=${NAME:-demo_single}
DATAROOT=${DATAROOT:-./datasets/single_demo}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
RESULTS_DIR=${RESULTS_DIR:-./results}
CROPS=${CROPS:-960}
CROP=${CROP:-64}
BATCH=${BATCH:-4}
# CPU speed: glibc keeps freed large buffers instead of returning them to the system after every
# step (refilling them cost about a tenth of the training time in page faults). Leave OpenMP's wait
# policy alone: OMP_WAIT_POLICY=PASSIVE made each step 1.4x slower on 2 idle cores.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-4294967296}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-4294967296}

"$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model sinsc --gpu_ids -1 \
  --checkpoints_dir "$CHECKPOINTS_DIR" --crop_size "$CROP" --batch_size "$BATCH" --max_dataset_size "$CROPS" \
  --n_epochs 1 --n_epochs_decay 1 --num_threads 0 --print_freq 400 --display_freq 400 --update_html_freq 400 "$@"
"$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model sinsc --gpu_ids -1 \
  --checkpoints_dir "$CHECKPOINTS_DIR" --results_dir "$RESULTS_DIR"

PAGE="$RESULTS_DIR/$NAME/test_latest"
PHOTO=$(ls "$PAGE/images/real_A/" | head -n 1)
# photo | painting | result side by side, each scaled to the photo's height.
"$PYTHON" - "$PAGE/images" "$PHOTO" "$RESULTS_DIR/$NAME/demo_strip.png" <<'PY'
import sys
from PIL import Image
folder, name, out = sys.argv[1:4]
images = [Image.open(f"{folder}/{label}/{name}").convert("RGB") for label in ("real_A", "real_B", "fake_B")]
height = images[0].height
images = [im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in images]
strip = Image.new("RGB", (sum(im.width for im in images) + 8 * (len(images) - 1), height), "white")
left = 0
for im in images:
    strip.paste(im, (left, 0))
    left += im.width + 8
strip.save(out)
PY
echo "painted photo (full size): $PAGE/images/fake_B/$PHOTO"
echo "results page:              $PAGE/index.html"
echo "photo | painting | result: $RESULTS_DIR/$NAME/demo_strip.png"
echo "training page:             $CHECKPOINTS_DIR/$NAME/web/index.html"
