#!/usr/bin/env bash
# Epoch time of `yolo3 train` with and without the decoded-image cache, on IMAGES photo-like
# 1280x720 JPEGs (scripts/bench_jpeg.py) plus 25 validation images, at --input 416, default
# model, batch 8, EPOCHS epochs per run: no cache, --cache ram and --cache disk with the default
# augmentation (decoded images are kept), and --cache ram with --no-augment (letterboxed images
# are kept). Epoch time is the difference of results.csv's cumulative `seconds` (validation
# included); epoch 1 decodes every image, later epochs read the cache.
#   scripts/bench-cache.sh             # IMAGES=500 EPOCHS=3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
images=${IMAGES:-500}
epochs=${EPOCHS:-3}
bench_python_deps PIL -- pillow
echo "building yolo3 (release)..." >&2
cargo build --quiet --release -p yolo3-cli
yolo3=target/release/yolo3

"$YOLO3_VENV/bin/python" scripts/bench_jpeg.py dataset "$work/train" "$images" 1280 720
"$YOLO3_VENV/bin/python" scripts/bench_jpeg.py dataset "$work/val" 25 1280 720

printf '| run | epoch 1 (s) | later epochs, median (s) | images/s later |\n| --- | ---: | ---: | ---: |\n'
run() { # label, extra flags...
  local label=$1; shift
  local name; name=$(tr -c 'a-z0-9\n' '-' <<<"$label")
  "$yolo3" -q train --data "$work/train/train.txt" --val "$work/val/train.txt" \
    --classes "$work/train/classes.txt" --input 416 --batch 8 --epochs "$epochs" \
    --project "$work/runs" --name "$name" "$@" >/dev/null
  "$YOLO3_VENV/bin/python" - "$work/runs/$name/results.csv" "$label" "$images" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
total = [float(r["seconds"]) for r in rows]
epoch = [b - a for a, b in zip([0.0] + total, total)]
later = statistics.median(epoch[1:]) if len(epoch) > 1 else float("nan")
print(f"| {sys.argv[2]} | {epoch[0]:.1f} | {later:.1f} | {int(sys.argv[3]) / later:.1f} |")
PY
}
run "no cache"
run "cache ram" --cache ram
run "cache disk" --cache disk --cache-dir "$work/cache"
run "no cache, no augment" --no-augment
run "cache ram, no augment" --cache ram --no-augment
