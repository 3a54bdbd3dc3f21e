#!/usr/bin/env bash
# End-to-end smoke test on the CPU in well under a minute: a 2-step train of a tiny `sc` model,
# a resume to step 3, test.py, then a check that every file users rely on exists.
#
#   bash scripts/smoke_test.sh
#   KEEP=1 bash scripts/smoke_test.sh     # keep the temporary folder to look at
#   GPU_IDS=0 bash scripts/smoke_test.sh  # on the first GPU instead of the CPU (default: -1)
#   bash scripts/smoke_test.sh --netG resnet_6blocks   # extra arguments go to both train.py runs
#
# Everything (data, checkpoints, results) goes to a fresh temporary folder; the repository is
# not written to. Random VGG weights keep it offline. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
GPU_IDS=${GPU_IDS:--1}
KEEP=${KEEP:-}
# The tensors are tiny: a second OpenMP thread costs more in synchronisation than it saves.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
NAME=smoke
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sc_smoke.XXXXXX")
cleanup() { if [ -z "$KEEP" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT

# Tiny dataset: 2 images per domain and split, with shapes so the spatial loss has structure.
"$PYTHON" - "$WORK/data" <<'PY'
import os
import sys

from PIL import Image, ImageDraw

root = sys.argv[1]
for split in ("trainA", "trainB", "testA", "testB"):
    os.makedirs(os.path.join(root, split))
    for i in range(2):
        colour = (40 + 100 * i, 200 if split.endswith("A") else 60, 90)
        image = Image.new("RGB", (40, 40), colour)
        ImageDraw.Draw(image).ellipse((6 + 4 * i, 8, 30, 32), fill=(250, 250 - 80 * i, 20))
        image.save(os.path.join(root, split, f"{i}.png"))
PY

COMMON=(--dataroot "$WORK/data" --name "$NAME" --model sc --checkpoints_dir "$WORK/checkpoints"
        --gpu_ids "$GPU_IDS" --ngf 8 --ndf 8 --num_threads 0)
TRAIN=("${COMMON[@]}" --vgg_weights random --attn_layers 2,4 --patch_nums 16 --load_size 36 --crop_size 32
       --print_freq 1 --display_freq 2 --update_html_freq 2)

echo "== train 2 steps"
"$PYTHON" train.py "${TRAIN[@]}" --max_iters 2 "$@"
echo "== resume to step 3"
"$PYTHON" train.py "${TRAIN[@]}" --continue_train --max_iters 3 "$@" | tee "$WORK/resume.log"
echo "== test"
"$PYTHON" test.py "${COMMON[@]}" --results_dir "$WORK/results" --load_size 32 --crop_size 32

echo "== check outputs"
missing=0
run_dir="$WORK/checkpoints/$NAME"
for f in "$run_dir/latest_net_G.pth" "$run_dir/latest_net_D.pth" "$run_dir/latest_train_state.pth" \
         "$run_dir/loss_log.txt" "$run_dir/train_opt.txt" "$run_dir/opt.json" "$run_dir/web/index.html" \
         "$WORK/results/$NAME/test_latest/index.html" "$WORK/results/$NAME/test_latest/images/fake_B/0.png"; do
  if [ ! -s "$f" ]; then echo "missing or empty: ${f#"$WORK"/}" >&2; missing=1; fi
done
if ! grep -q "resuming at epoch" "$WORK/resume.log"; then
  echo "the --continue_train run did not report resuming from the checkpoint" >&2; missing=1
fi
if [ "$missing" -ne 0 ]; then echo "smoke test FAILED" >&2; exit 1; fi
echo "smoke test passed"
