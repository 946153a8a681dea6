#!/usr/bin/env bash
# The test command of the README and of CI: installs libtorch if needed, then runs every
# test of the workspace (unit, golden against ../shared, integration tests of the binary),
# after checking that every declared dependency is used (cargo-machete, installed once from
# crates.io into ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
if ! command -v cargo-machete >/dev/null; then
    cargo install cargo-machete --locked --version 0.9.2
fi
cargo machete
cargo test --workspace --locked "$@"
