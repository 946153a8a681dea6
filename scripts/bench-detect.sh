#!/usr/bin/env bash
# `yolo3 detect` throughput against the same pipeline in PyTorch (scripts/bench_detect_torch.py):
# decode PNG/JPEG files, letterbox to 416, forward, keras yolo_eval (decode + per-class NMS),
# batch 8, 2 threads each, on a folder of synthetic 416x416 images (half PNG, half JPEG).
# Both sides read the same darknet weights: the shared random tiny-YOLOv3 weights, and random
# YOLOv3 weights generated here (248 MB, in a temporary folder). Model loading is not timed;
# the Rust side runs with --no-images (the PyTorch side writes nothing either), plus one extra
# tiny row with annotated images written. NMS IoU 0.5 and 20 boxes per class as keras-yolo3;
# the score threshold is 0.9 because random weights put ~1000 boxes per image above keras' 0.6
# (80 classes x 20), which would measure NMS on junk rather than a detector's workload.
#   scripts/bench-detect.sh            # IMAGES=32, CONF=0.9 by default
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
images=${IMAGES:-32}
models=../shared/models
# Pillow decodes the images on the PyTorch side.
bench_python_deps PIL -- pillow
py() { "$YOLO3_VENV/bin/python" scripts/bench_detect_torch.py "$@"; }

echo "building yolo3 (release)..." >&2
cargo build --quiet --release -p yolo3-cli
yolo3=target/release/yolo3

py images "$work/images" "$images" 416
py random-weights "$models/cfg/yolov3.cfg" "$work/yolov3-random.weights" 1
"$yolo3" -q convert weights --cfg "$models/cfg/yolov3-tiny.cfg" \
  --weights "$models/weights/yolov3-tiny.weights" --out "$work/tiny.safetensors"

thresholds=("${CONF:-0.9}" 0.5 20)
rust() { # label, extra flags...
  local label=$1; shift
  local line
  line=$("$yolo3" --threads 2 detect "$@" --input 416 --batch 8 --conf "${thresholds[0]}" \
    --iou "${thresholds[1]}" --max-boxes "${thresholds[2]}" --project "$work/runs" "$work/images" 2>&1 \
    | grep -E '^[0-9]+ images, [0-9]+ boxes in') || { echo "yolo3 detect failed ($label)" >&2; exit 1; }
  # "<n> images, <b> boxes in <s> s (<r> images/s at ...)"
  echo "$label $(echo "$line" | awk '{gsub(/\(/, "", $8); print $1, $6, $8, $3}')"
}
torch() { # label cfg weights
  echo "$1 $(py detect "$2" "$3" "$work/images" 416 8 "${thresholds[@]}" | awk '$1 == "RESULT" {print $2, $3, $4, $5}')"
}

echo "timing (each side in turn, never concurrently)..." >&2
{
  rust tiny-yolov3 --weights "$work/tiny.safetensors" --no-images
  torch tiny-yolov3 "$models/cfg/yolov3-tiny.cfg" "$models/weights/yolov3-tiny.weights"
  rust yolov3 --weights "$work/yolov3-random.weights" --cfg "$models/cfg/yolov3.cfg" --no-images
  torch yolov3 "$models/cfg/yolov3.cfg" "$work/yolov3-random.weights"
  rust tiny-yolov3+images --weights "$work/tiny.safetensors"
} > "$work/results.txt"
cat "$work/results.txt" >&2

# Lines: rust label n seconds rate boxes / torch label n seconds rate boxes, alternating.
awk '
  NR % 2 == 1 && $1 !~ /\+images/ { label = $1; r = $4; rb = $5; next }
  $1 !~ /\+images/ { printf "| %s | %s | %.2f | %.2f | %.2fx | %s / %s |\n", label, $2, r, $4, r / $4, rb, $5 }
  $1 ~ /\+images/ { extra = sprintf("| %s (annotated PNG/JPEG written) | %s | %.2f | | | %s |\n", $1, $2, $4, $5) }
  BEGIN { print "\n| net (416, batch 8, 2 threads) | images | yolo3 images/s | PyTorch images/s | yolo3 / PyTorch | boxes yolo3 / PyTorch |"; print "|---|---:|---:|---:|---:|---|" }
  END { printf "%s", extra }' "$work/results.txt"
