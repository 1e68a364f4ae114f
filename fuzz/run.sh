#!/usr/bin/env bash
# Runs the wire decoder fuzz target for a number of seconds (default 60).
# Usage: fuzz/run.sh [seconds] [extra libFuzzer flags...]
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly compiler flags
# (-Zsanitizer=address); on a stable toolchain RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
exec cargo fuzz run wire_decoder -- -max_total_time="$seconds" "$@"
