#!/usr/bin/env bash
# Forward + backward of the YOLOv3 loss on identical inputs: keras-yolo3's loss in TensorFlow
# (graph mode) and its PyTorch port (../shared/peers), then yolo3-core's fused loss.
# Batch 16, 416x416, 80 classes, 20 boxes per image, 2 threads each. Prints the medians.
#
#   YOLO3_PEERS_VENV  where the peers' environment lives (default ~/.cache/yolo3/peers-venv)
#   RUNS              timed runs per framework (default 25)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/peers"
venv=${YOLO3_PEERS_VENV:-$HOME/.cache/yolo3/peers-venv}
runs=${RUNS:-25}
[ -f "$peers/loss_bench.py" ] || { echo "bench-loss: no $peers/loss_bench.py (the shared folder sits beside the checkout)" >&2; exit 1; }

if ! "$venv/bin/python" -c "import tensorflow, torch, safetensors, numpy" 2>/dev/null; then
  echo "bench-loss: installing the peers (TensorFlow, PyTorch) into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$peers/requirements.txt"
fi

. "$here/scripts/env.sh"
cargo build --quiet --release -p yolo3-core --example loss_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inputs="$work/loss_inputs.safetensors"

# The peers need the BLAS they were benchmarked with; these variables slow a current numpy.
tf=$(cd "$peers" && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" loss_bench.py --framework tf --runs "$runs" --dump "$inputs" | tail -n 1)
torch=$(cd "$peers" && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" loss_bench.py --framework torch --runs "$runs" | tail -n 1)
rust=$(RAYON_NUM_THREADS=2 "$here/target/release/examples/loss_bench" "$inputs" "$runs" 5)
echo "tf:    $tf"
echo "torch: $torch"
echo "rust:  $rust"
python3 - "$tf" "$torch" "$rust" <<'PY'
import json, sys
tf, torch, rust = (json.loads(a) for a in sys.argv[1:])
for name, r in (("tf", tf), ("torch", torch)):
    if abs(r["loss"] - rust["loss"]) > 1e-4 * abs(r["loss"]):
        sys.exit(f"loss mismatch: {name} {r['loss']} vs rust {rust['loss']}")
r, t, p = rust["median_ms"], tf["median_ms"], torch["median_ms"]
print(f"cpu medians: rust {rust['median_cpu_ms']:.2f} ms, tf {tf['median_cpu_ms']:.1f} ms, torch {torch['median_cpu_ms']:.1f} ms")
n = rust["nchw_median_ms"]
print(f"rust in NCHW (the layout a conv net emits; same values): {n:.2f} ms, tf/rust {t/n:.1f}, torch/rust {p/n:.1f}")
print(f"loss fwd+bwd median: rust {r:.2f} ms, tf {t:.1f} ms, torch {p:.1f} ms, tf/rust {t/r:.1f}, torch/rust {p/r:.1f}")
PY
