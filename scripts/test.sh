#!/usr/bin/env bash
# The test command of the README and of CI: installs libtorch if needed, then runs every
# test of the workspace (unit, golden against ../shared, integration tests of the binary),
# after checking the formatting (rustfmt), the lint table of Cargo.toml with every warning an
# error (clippy, all targets) and that every declared dependency is used (cargo-machete,
# installed once from crates.io into ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
if ! command -v cargo-machete >/dev/null; then
    cargo install cargo-machete --locked --version 0.9.2
fi
# rustup's toolchains ship both; a minimal profile may not have them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo machete
cargo test --workspace --locked "$@"
