#!/usr/bin/env bash
# Behaviour check for refactors: runs the default training run, `detect` over a folder and
# `eval` with two yolo3 binaries (before and after a change) and compares every file they
# write, byte for byte. Only what is time by nature is left out: the `seconds` column of
# results.csv, the plot of it (results.png) and lines printed with timings. The headers of
# .safetensors files are compared with their keys sorted: binaries before 2026-12 wrote their
# metadata in hash order, which changes from run to run of the same binary.
#
#   scripts/same-outputs.sh BEFORE_BINARY AFTER_BINARY [train flags...]
#
# Extra arguments go to both `train` runs (for a quicker check, e.g. `--epochs 3`); with none
# the run is the README's default one. Exits 0 when every output is the same, 1 otherwise,
# listing the files that differ.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BEFORE_BINARY AFTER_BINARY [train flags...]" >&2
    exit 2
fi
before=$(realpath "$1")
after=$(realpath "$2")
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_all() { # binary folder
    local bin=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    (
        cd "$dir"
        "$bin" train "$@" >train.log 2>&1 || { cat train.log >&2; exit 1; }
        local run=runs/train/exp
        "$bin" detect "$run/data/images/val" -w "$run/weights/best.safetensors" \
            --save-txt >detect.log 2>&1 || { cat detect.log >&2; exit 1; }
        "$bin" eval -d "$run/data/val.txt" -w "$run/weights/best.safetensors" --json \
            >eval.json 2>eval.log || { cat eval.log >&2; exit 1; }
        # Time columns and lines out; everything else stays.
        sed -i 's/,[^,]*$//' "$run/results.csv"
        rm -f "$run/results.png" train.log detect.log eval.log
        grep -v '"seconds"' eval.json >eval.json.kept && mv eval.json.kept eval.json
        find . -name '*.safetensors' -print0 | xargs -0 -r python3 -c "$sort_header"
    )
}

# Rewrites each .safetensors file given with its JSON header's keys sorted (data unchanged).
sort_header='
import json, struct, sys
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True).encode()
    open(path, "wb").write(struct.pack("<Q", len(header)) + header + data[8 + n:])
'

echo "before: $before"
run_all "$before" "$work/before" "$@"
echo "after:  $after"
run_all "$after" "$work/after" "$@"
(cd "$work/before" && find . -type f | sort) >"$work/list.before"
(cd "$work/after" && find . -type f | sort) >"$work/list.after"
status=0
if ! diff -u "$work/list.before" "$work/list.after"; then
    echo "the two runs wrote different files" >&2
    status=1
fi
count=0
while read -r f; do
    [ -f "$work/after/$f" ] || continue
    count=$((count + 1))
    if ! cmp -s "$work/before/$f" "$work/after/$f"; then
        echo "differs: $f" >&2
        status=1
    fi
done <"$work/list.before"
if [ $status -eq 0 ]; then
    echo "same outputs: $count files byte-identical"
fi
exit $status
