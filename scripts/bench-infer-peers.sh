#!/usr/bin/env bash
# yolo3 against the CPU inference engines people deploy instead: ONNX Runtime and OpenCV DNN
# (both from PyPI, into the bench-deps folder), on the same darknet weights and images, in one
# run, each side in turn (never concurrently), 2 threads each, medians.
#
# Rows: tiny-YOLOv3 and YOLOv3 at 416, batch 1 and 8. Columns, in images/s:
# * yolo3 forward: the network only, as `detect` runs it (InferenceNet: batch norm folded,
#   oneDNN's fused convolutions on channels-last activations, Winograd for the 3x3
#   convolutions of 128 or more channels, the shim's one-pass conv + pool and pooling), the
#   `+winograd` row of benches/infer.rs;
# * yolo3 detect: `yolo3 detect --no-images` end to end (decode the files, letterbox, forward,
#   decode + NMS, predictions.json), model loading excluded, over IMAGES synthetic images;
# * ONNX Runtime forward: ORT_ENABLE_ALL on the graph `yolo3 export --format onnx` writes
#   (checked first against OpenCV's own darknet importer), input letterboxed beforehand;
# * OpenCV forward: cv2.dnn.readNetFromDarknet on the same cfg and weights.
# Weights: the shared random tiny-YOLOv3 weights, random YOLOv3 weights generated here (248 MB,
# in a temporary folder). Random weights time like trained ones for the forward; detect runs
# at --conf 0.9 so that NMS is not measured on thousands of junk boxes (see bench-detect.sh).
#   scripts/bench-infer-peers.sh        # IMAGES=96 ITERS=5 DETECT_RUNS=3 by default (detect reads
#   the next batch while the network runs, so a folder of a few batches understates it; its
#   figure is the median of DETECT_RUNS runs, the peers' the median of ITERS forward passes)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
images=${IMAGES:-96}
iters=${ITERS:-5}
detect_runs=${DETECT_RUNS:-3}
models=../shared/models
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295}
bench_python_deps onnxruntime cv2 PIL -- onnxruntime opencv-python-headless==4.10.0.84 pillow
py() { "$YOLO3_VENV/bin/python" "$@"; }
peers() { py scripts/bench_infer_peers.py "$@"; }

echo "building yolo3 and the forward bench (release)..." >&2
cargo build --quiet --release -p yolo3-cli
cargo bench -q -p yolo3-model --bench infer --no-run >&2
yolo3=target/release/yolo3

py scripts/bench_detect_torch.py images "$work/images" "$images" 416
py scripts/bench_detect_torch.py random-weights "$models/cfg/yolov3.cfg" "$work/yolov3.weights" 1
declare -A cfg=([tiny-yolov3]="$models/cfg/yolov3-tiny.cfg" [yolov3]="$models/cfg/yolov3.cfg")
declare -A weights=([tiny-yolov3]="$models/weights/yolov3-tiny.weights" [yolov3]="$work/yolov3.weights")

detect() { # net batch -> images/s, the median of DETECT_RUNS runs
  for _ in $(seq "$detect_runs"); do
    "$yolo3" --threads 2 detect --weights "${weights[$1]}" --cfg "${cfg[$1]}" --input 416 \
      --batch "$2" --conf 0.9 --no-images --project "$work/runs" "$work/images" 2>&1 \
      | awk '/^[0-9]+ images, [0-9]+ boxes in/ { gsub(/\(/, "", $8); print $8 }'
  done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
forward() { # net batch -> images/s
  YOLO3_BENCH_ONLY="$1:$2:winograd" cargo bench -q -p yolo3-model --bench infer \
    | awk -v key="$1+winograd" -v b="$2" '$1 == "RESULT" && $2 == key { printf "%.2f\n", 1000 * b / $4 }'
}
rate() { awk '$1 == "RESULT" { print $5 }'; }

echo "timing (load average $(cut -d' ' -f1-3 /proc/loadavg))..." >&2
rows=()
for net in tiny-yolov3 yolov3; do
  "$yolo3" -q export --weights "${weights[$net]}" --cfg "${cfg[$net]}" --input 416 --out "$work/$net.onnx"
  peers check "$work/$net.onnx" "${cfg[$net]}" "${weights[$net]}" "$work/images" 416 2 >&2
  for batch in 1 8; do
    n=$iters
    [ "$net:$batch" = yolov3:8 ] && n=$(( (iters + 1) / 2 ))
    f=$(forward "$net" "$batch")
    d=$(detect "$net" "$batch")
    o=$(peers ort "$work/$net.onnx" "$work/images" 416 "$batch" 2 "$n" | rate)
    c=$(peers opencv "${cfg[$net]}" "${weights[$net]}" "$work/images" 416 "$batch" 2 "$n" | rate)
    echo "$net $batch: forward $f, detect $d, ORT $o, OpenCV $c images/s" >&2
    rows+=("| $net | $batch | $f | $d | $o | $c | $(awk -v d="$d" -v o="$o" 'BEGIN { printf "%.2fx", d / o }') |")
  done
done

echo
echo "| net (416, 2 threads) | batch | yolo3 forward | yolo3 detect (end to end) | ONNX Runtime forward | OpenCV DNN forward | detect / ORT forward |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "images/s, medians; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
