#!/usr/bin/env bash
# The test command of the README and of CI: installs libtorch if needed, then runs every
# test of the workspace (unit, golden against ../shared, integration tests of the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
cargo test --workspace --locked "$@"
