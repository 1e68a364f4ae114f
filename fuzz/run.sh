#!/usr/bin/env bash
# Runs one fuzz target (FUZZ_TARGET, default wire_decoder) for a number of
# seconds (default 60), from its seeds in fuzz/seeds/<target>/.
# Usage: [FUZZ_TARGET=name] fuzz/run.sh [seconds] [extra libFuzzer flags...]
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly compiler flags
# (-Zsanitizer=address); on a stable toolchain RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")"
target="${FUZZ_TARGET:-wire_decoder}"
seconds="${1:-60}"
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
mkdir -p "corpus/$target"
exec cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- -max_total_time="$seconds" "$@"
