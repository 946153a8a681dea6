#!/usr/bin/env bash
# Inference benchmark of yolo3-model against PyTorch: YOLOv3 and tiny-YOLOv3 at 416x416,
# batch 1 and 8, 2 threads each, medians. Runs the Rust bench and the PyTorch twin one after
# the other (never concurrently) and prints a table with the ratio tch / PyTorch.
#   scripts/bench-model.sh            # YOLO3_BENCH_SCALE=0.5 halves the iterations
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "running the tch bench (cargo bench -p yolo3-model --bench infer)..." >&2
cargo bench -q -p yolo3-model --bench infer | tee "$out/rust.txt" >&2
echo "running the PyTorch twin..." >&2
"$YOLO3_VENV/bin/python" crates/yolo3-model/benches/torch_infer.py | tee "$out/torch.txt" >&2

awk '
  FNR == 1 { file++ }
  $1 == "RESULT" { key = $2 " " $3; if (file == 1) { rust[key] = $4; order[++n] = key } else { torch[key] = $4 } }
  END {
    printf "\n| net | batch | tch (ms) | PyTorch (ms) | tch / PyTorch |\n|---|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, " ")
      ratio = (k in torch && torch[k] > 0) ? sprintf("%.2fx", rust[k] / torch[k]) : "n/a"
      printf "| %s | %s | %s | %s | %s |\n", p[1], p[2], rust[k], (k in torch ? torch[k] : "n/a"), ratio
    }
  }' "$out/rust.txt" "$out/torch.txt"
