#!/usr/bin/env bash
# Data-parallel training on this machine: the default model and data (`yolo3 train` with no
# arguments) for EPOCHS epochs as 1 process x 2 threads and as 2 ranks x 1 thread (Gloo over
# 127.0.0.1; batch norm over the global batch, and with --local-bn over each rank's slice), in
# one run. Prints training images/s (median over the epochs after the first;
# validation excluded) and, for the ranks, the gradient all-reduce time per optimizer step,
# from the per-epoch lines rank 0 prints.
#   scripts/bench-dist.sh              # EPOCHS=4
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
epochs=${EPOCHS:-4}
echo "building yolo3 (release)..." >&2
cargo build --quiet --release -p yolo3-cli
yolo3=target/release/yolo3

printf '| run | training images/s (median) | all-reduce ms/step (median) | all-reduce share |\n| --- | ---: | ---: | ---: |\n'
run() { # label, flags...
  local label=$1; shift
  "$yolo3" train --epochs "$epochs" --project "$work/runs" "$@" 2>"$work/log" >/dev/null
  "$YOLO3_VENV/bin/python" - "$work/log" "$label" <<'PY'
import re, statistics, sys
lines = [l for l in open(sys.argv[1]) if re.search(r"epoch \d+: [\d.]+ images/s", l)]
later = lines[1:] or lines
speed = statistics.median(float(re.search(r"([\d.]+) images/s", l).group(1)) for l in later)
ms = [float(m.group(1)) for l in later if (m := re.search(r"all-reduce ([\d.]+) ms", l))]
share = [float(m.group(1)) for l in later if (m := re.search(r"\(([\d.]+)% of", l))]
fmt = lambda v, unit: f"{statistics.median(v):.1f}{unit}" if v else "-"
print(f"| {sys.argv[2]} | {speed:.1f} | {fmt(ms, '')} | {fmt(share, '%')} |")
PY
}
run "1 process x 2 threads" --threads 2
run "2 ranks x 1 thread" --nproc-per-node 2 --threads 1
run "2 ranks x 1 thread, --local-bn" --nproc-per-node 2 --threads 1 --local-bn
