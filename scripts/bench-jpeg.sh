#!/usr/bin/env bash
# JPEG decoders on photo-like files (scripts/bench_jpeg.py explains the files): yolo3's own
# path (the `image` crate, zune-jpeg inside, EXIF orientation and pixel limit), zune-jpeg called
# directly, and libjpeg-turbo as Pillow and OpenCV bundle it (from PyPI). One thread each,
# median over REPEATS passes, at 1280x720, 1920x1080 and 4032x3024 (a 12 MP phone photo).
#   scripts/bench-jpeg.sh              # REPEATS=7
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
repeats=${REPEATS:-7}
bench_python_deps PIL cv2 -- pillow opencv-python-headless
py() { "$YOLO3_VENV/bin/python" scripts/bench_jpeg.py "$@"; }

echo "building the decoder example (release)..." >&2
cargo build --quiet --release -p yolo3-data --example decode_jpeg
rust=target/release/examples/decode_jpeg

printf '| size | decoder | ms per image | vs libjpeg-turbo (Pillow) |\n| --- | --- | ---: | ---: |\n'
for spec in 1280x720:40 1920x1080:24 4032x3024:8; do
  size=${spec%%:*} n=${spec##*:}
  w=${size%%x*} h=${size##*x}
  dir="$work/$size"
  py photos "$dir" "$n" "$w" "$h"
  results=$( { "$rust" "$dir" "$repeats"; py decode "$dir" "$repeats"; } | grep '^RESULT')
  turbo=$(awk '$2 == "pillow" { print $4 }' <<<"$results")
  awk -v size="$size" -v turbo="$turbo" \
    '{ printf "| %s | %s | %.2f | %.2fx |\n", size, $2, $4, $4 / turbo }' <<<"$results"
done
