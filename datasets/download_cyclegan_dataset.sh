#!/usr/bin/env bash
# Download one of the CycleGAN / pix2pix datasets from the Berkeley server into ./datasets/<name>.
#
#   bash datasets/download_cyclegan_dataset.sh horse2zebra
#   DATASETS_DIR=/big/disk bash datasets/download_cyclegan_dataset.sh cityscapes
#   DOWNLOADER=wget bash datasets/download_cyclegan_dataset.sh maps    # default: curl, else wget
#
# Unknown names list the valid ones and exit 2; a failed download prints one line naming the URL
# and exits 1. The `cityscapes` archive is the pix2pix aligned set (photo | label map), the layout
# that datasets/prepare_cityscapes_dataset.py also makes from the official Cityscapes release.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMES=(apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo
       vangogh2photo maps cityscapes facades iphone2dslr_flower mini mini_pix2pix mini_colorization
       ae_photos grumpifycat)
BASE_URL=${BASE_URL:-http://efrosgans.eecs.berkeley.edu/cyclegan/datasets}
DATASETS_DIR=${DATASETS_DIR:-./datasets}
DOWNLOADER=${DOWNLOADER:-}
PYTHON=${PYTHON:-python}

usage_error() {
  echo "error: $1; choose one of: ${NAMES[*]}" >&2
  echo "usage: bash datasets/download_cyclegan_dataset.sh <name>" >&2
  exit 2
}

if [ "$#" -ne 1 ]; then usage_error "give exactly one dataset name"; fi
NAME=$1
known=0
for n in "${NAMES[@]}"; do if [ "$n" = "$NAME" ]; then known=1; fi; done
if [ "$known" -ne 1 ]; then usage_error "unknown dataset '$NAME'"; fi

if [ -z "$DOWNLOADER" ]; then
  if command -v curl >/dev/null 2>&1; then DOWNLOADER=curl
  elif command -v wget >/dev/null 2>&1; then DOWNLOADER=wget
  else echo "error: neither curl nor wget is installed; install one of them" >&2; exit 2
  fi
elif [ "$DOWNLOADER" != curl ] && [ "$DOWNLOADER" != wget ]; then
  echo "error: DOWNLOADER=$DOWNLOADER: choose curl or wget" >&2; exit 2
elif ! command -v "$DOWNLOADER" >/dev/null 2>&1; then
  echo "error: DOWNLOADER=$DOWNLOADER is not installed; use curl or wget" >&2; exit 2
fi

URL="$BASE_URL/$NAME.zip"
ZIP="$DATASETS_DIR/$NAME.zip"
LOG="$ZIP.log"
mkdir -p "$DATASETS_DIR"
if [ -e "$DATASETS_DIR/$NAME" ]; then
  echo "error: $DATASETS_DIR/$NAME already exists; remove it first to download again" >&2; exit 2
fi

echo "downloading $URL -> $ZIP (with $DOWNLOADER)"
case "$DOWNLOADER" in
  wget) cmd=(wget --no-verbose -O "$ZIP" "$URL") ;;
  curl) cmd=(curl --fail --location --silent --show-error -o "$ZIP" "$URL") ;;
esac
# The downloader's own messages go to a log so a failure reads as one line naming the URL.
if ! "${cmd[@]}" 2>"$LOG"; then
  reason=$(grep -v '^[[:space:]]*$' "$LOG" | tail -n 1 || true)
  rm -f "$ZIP" "$LOG"
  echo "error: could not download $URL${reason:+ ($reason)}; check the network or fetch the file by hand into $DATASETS_DIR/" >&2
  exit 1
fi
rm -f "$LOG"

echo "unpacking $ZIP"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$ZIP" -d "$DATASETS_DIR"
else
  "$PYTHON" -m zipfile -e "$ZIP" "$DATASETS_DIR"
fi
rm -f "$ZIP"
echo "done: $DATASETS_DIR/$NAME"
