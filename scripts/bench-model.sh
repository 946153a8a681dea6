#!/usr/bin/env bash
# Inference benchmark of yolo3-model against PyTorch: YOLOv3 and tiny-YOLOv3 at 416x416,
# batch 1 and 8, 2 threads each, medians. For each configuration it runs the Rust bench and
# then the PyTorch twin (never concurrently, interleaved so that load changes on a shared
# machine hit both sides alike) and finally prints a table with the ratio tch / PyTorch.
#   scripts/bench-model.sh            # YOLO3_BENCH_SCALE=0.5 halves the iterations
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
# Both sides run with the malloc settings the yolo3 binary gives itself (crates/yolo3-cli,
# `tuned_environment`); with glibc's defaults a fresh mmap per large tensor costs both about a
# fifth at YOLOv3 batch 8.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "building the tch bench..." >&2
cargo bench -q -p yolo3-model --bench infer --no-run >&2
for run in tiny-yolov3:1 tiny-yolov3:8 yolov3:1 yolov3:8; do
  echo "== $run" >&2
  YOLO3_BENCH_ONLY=$run cargo bench -q -p yolo3-model --bench infer | tee -a "$out/rust.txt" >&2
  YOLO3_BENCH_ONLY=$run "$YOLO3_VENV/bin/python" crates/yolo3-model/benches/torch_infer.py \
    | tee -a "$out/torch.txt" >&2
done

awk '
  FNR == 1 { file++ }
  $1 == "RESULT" {
    key = $2 " " $3
    if (file == 1) { rm[key] = $4; rn[key] = $6; order[++n] = key } else { tm[key] = $4; tn[key] = $6 }
  }
  function ratio(a, b) { return (b > 0) ? sprintf("%.2fx", a / b) : "n/a" }
  END {
    printf "\n| net | batch | tch median (ms) | PyTorch median (ms) | ratio | tch min (ms) | PyTorch min (ms) | ratio |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, " ")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p[1], p[2], rm[k], tm[k], ratio(rm[k], tm[k]), rn[k], tn[k], ratio(rn[k], tn[k])
    }
    print "\nratio = tch / PyTorch (< 1: tch is faster). On a busy machine the minimum is the"
    print "better estimate of unloaded speed."
  }' "$out/rust.txt" "$out/torch.txt"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
