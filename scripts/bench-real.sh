#!/usr/bin/env bash
# Fine-tuning on real photos, as a practitioner does it: the official tiny-YOLOv3 COCO weights
# fine-tuned on the airborne tree-crown photos of ../shared/real/trees (one class), trained on
# tiles at full resolution (--tile 416). Held out: the right part of the 2299 x 2472 Yellowstone
# photo (the right 30% by default, SPLIT=0.7), which training never sees; the 400 x 400 Florida
# photo and the left part train. Boxes go to the part holding their centre, clipped to it.
#
#   scripts/bench-real.sh [train flags...]      e.g. scripts/bench-real.sh --epochs 60 --lr 1e-3
#
# Prints the run's flags, optimizer steps, minutes, the best validation mAP50 on the held-out
# tiles (training's validation: the fixed grid of 416 tiles) and the mAP50 of `eval --tile 416`
# on the whole held-out part (tiles merged with the whole-image pass).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
# YOLO3_BIN: a yolo3 binary already built (default: build the release one).
bin=${YOLO3_BIN:-}
if [ -z "$bin" ]; then
    cargo build --quiet --release --locked -p yolo3-cli
    bin=$PWD/target/release/yolo3
fi
trees=$(cd ../shared/real/trees && pwd)
models=$(cd ../shared/models && pwd)
split=${SPLIT:-0.7}

# The parts: crop rectangles for ffmpeg and keras train.txt lines (VOC's 1-based inclusive
# corners to pixel edges).
python3 - "$trees" "$work" "$split" <<'PY'
import sys, xml.etree.ElementTree as ET
trees, work, split = sys.argv[1], sys.argv[2], float(sys.argv[3])
def boxes(name):
    root = ET.parse(f"{trees}/Annotations/{name}.xml").getroot()
    size = root.find("size")
    w, h = int(size.find("width").text), int(size.find("height").text)
    out = []
    for o in root.iter("object"):
        b = o.find("bndbox")
        x0, y0, x1, y1 = (float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append((x0 - 1, y0 - 1, x1, y1))
    return w, h, out
def line(path, bs):
    return path + "".join(f" {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f},0" for x0, y0, x1, y1 in bs)
big = "2019_YELL_2_528000_4978000_image_crop2"
w, h, bs = boxes(big)
cut = int(w * split)
left = [(x0, y0, min(x1, cut), y1) for x0, y0, x1, y1 in bs if (x0 + x1) / 2 < cut]
right = [(max(x0, cut) - cut, y0, x1 - cut, y1) for x0, y0, x1, y1 in bs if (x0 + x1) / 2 >= cut]
_, _, small = boxes("OSBS_029")
open(f"{work}/crops", "w").write(f"{cut}:{h}:0:0 {w - cut}:{h}:{cut}:0\n")
open(f"{work}/train.txt", "w").write(
    line(f"{work}/train_part.png", left) + "\n" + line(f"{trees}/JPEGImages/OSBS_029.png", small) + "\n")
open(f"{work}/val.txt", "w").write(line(f"{work}/val_part.png", right) + "\n")
open(f"{work}/classes.txt", "w").write("Tree\n")
print(f"training: {cut} x {h} of {big} ({len(left)} boxes) and OSBS_029 ({len(small)} boxes); "
      f"held out: {w - cut} x {h} ({len(right)} boxes)")
PY
read -r train_crop val_crop <"$work/crops"
photo="$trees/JPEGImages/2019_YELL_2_528000_4978000_image_crop2.png"
ffmpeg -loglevel error -i "$photo" -vf "crop=$train_crop" "$work/train_part.png"
ffmpeg -loglevel error -i "$photo" -vf "crop=$val_crop" "$work/val_part.png"

flags=(--data "$work/train.txt" --val "$work/val.txt" --classes "$work/classes.txt"
  --cfg "$models/cfg/yolov3-tiny.cfg" --weights "$models/weights/yolov3-tiny.weights"
  --tile 416 --input 416 "$@")
echo "yolo3 train ${flags[*]//$work\//} "
start=$(date +%s)
"$bin" -q train "${flags[@]}" --project "$work/runs" --name real
minutes=$(python3 -c "print(f'{($(date +%s) - $start) / 60:.1f}')")
run="$work/runs/real"
python3 - "$run" "$minutes" <<'PY'
import csv, glob, json, struct, sys, tomllib
run, minutes = sys.argv[1], sys.argv[2]
# Optimizer steps: the run state saved beside the last checkpoint (safetensors metadata).
state = open(glob.glob(f"{run}/weights/last.state-*.safetensors")[0], "rb").read()
(n,) = struct.unpack("<Q", state[:8])
steps = json.loads(json.loads(state[8:8 + n])["__metadata__"]["run_state"])["optimizer_steps_taken"]
rows = list(csv.DictReader(open(f"{run}/results.csv")))
best = max(rows, key=lambda r: float(r["map50_95"]))
peak = max(float(r["map50"]) for r in rows)
args = tomllib.load(open(f"{run}/args.toml", "rb"))
print(f"epochs {len(rows)}, optimizer steps {steps}, minutes {minutes}; held-out tiles mAP50: best checkpoint "
      f"{float(best['map50']):.3f} (epoch {best['epoch']}), peak {peak:.3f}, last "
      f"{float(rows[-1]['map50']):.3f}; batch {args['batch']}, nominal {args['nominal_batch']}")
PY
"$bin" -q eval -d "$work/val.txt" --classes "$work/classes.txt" -w "$run/weights/best.safetensors" \
  --tile 416 --max-boxes 1000 --json --project "$work/runs" --name eval >"$work/eval.json"
python3 -c "import json; r = json.load(open('$work/eval.json')); print(f\"held-out part whole, eval --tile 416: mAP50 {r['map50']:.3f}, mAP50-95 {r['map50_95']:.3f}\")"
