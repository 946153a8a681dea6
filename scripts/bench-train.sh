#!/usr/bin/env bash
# Training throughput (issue 4 item 9): images/s of a training epoch of tiny-YOLOv3 (the
# official ../shared/models/cfg/yolov3-tiny.cfg, adapted to the dataset's 4 classes) at input
# 416, batch 8, Adam, random initial weights, on the same synthetic dataset written at 416x416
# by yolo3_data::synthetic (crates/yolo3-data/examples/make_synthetic.rs). Each side does
# PNG decode + keras random augmentation + targets + forward + loss + backward + optimizer step.
#
# * yolo3: `yolo3 train --epochs 2` with its default threads (all cores) and its loader
#   (decoding/augmenting in parallel with the step, 2 batches ahead). The rate is the training
#   images over the second epoch's time from results.csv (`seconds`, second row minus first),
#   so start-up and the first epoch's warm-up are excluded. That time also holds the epoch's
#   validation, here on VAL=8 images (one forward of 8 images + decode + mAP) and the
#   checkpoint/plot writing: a few percent of an epoch, counted against yolo3.
# * PyTorch (scripts/bench_train_torch.py): a plain loop, 2 threads, the same work per image
#   (Pillow decode, keras augmentation in numpy, peers' preprocess_true_boxes and yolo_loss);
#   the median images/s over batches after WARMUP batches.
# The two run one after the other, never concurrently.
#
#   scripts/bench-train.sh          # IMAGES=160 VAL=8 WARMUP=2
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
images=${IMAGES:-160}
val=${VAL:-8}
warmup=${WARMUP:-2}
cfg=../shared/models/cfg/yolov3-tiny.cfg
# Pillow decodes the images on the PyTorch side.
bench_python_deps PIL -- pillow

echo "building yolo3 and make_synthetic (release)..." >&2
cargo build --quiet --release -p yolo3-cli
cargo build --quiet --release -p yolo3-data --example make_synthetic
target/release/examples/make_synthetic "$work/data" "$images" "$val" 416 > /dev/null

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "yolo3 train (2 epochs of $images images)..." >&2
target/release/yolo3 -q train --data "$work/data/train.txt" --val "$work/data/val.txt" \
  --classes "$work/data/classes.txt" --cfg "$cfg" --input 416 --batch 8 --nominal-batch 8 \
  --epochs 2 --optimizer adam --lr 1e-3 --project "$work/runs" --name bench > "$work/train.log" 2>&1 \
  || { cat "$work/train.log" >&2; echo "yolo3 train failed" >&2; exit 1; }
# Training images per epoch: whole batches only (the loader drops a partial last batch).
trained=$(( images / 8 * 8 ))
rust=$(awk -F, -v n="$trained" '
  NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i; next }
  { s[NR - 1] = $c }
  END { if (!c || !(2 in s)) exit 1; printf "%.3f %.2f", n / (s[2] - s[1]), s[2] - s[1] }' \
  "$work/runs/bench/results.csv")
echo "yolo3: second epoch ${rust#* } s for $trained images (validation of $val images included)" >&2

echo "PyTorch (1 epoch of $images images)..." >&2
torch_out=$("$YOLO3_VENV/bin/python" scripts/bench_train_torch.py "$cfg" "$work/data/train.txt" 416 8 "$warmup")
echo "$torch_out" | grep -v '^RESULT' >&2
torch=$(echo "$torch_out" | awk '$1 == "RESULT" { print $2 }')
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

awk -v r="${rust%% *}" -v t="$torch" \
  'BEGIN { printf "train images/s: yolo3 %.2f, pytorch %.2f, ratio %.2f\n", r, t, t / r }'
