#!/usr/bin/env bash
# CI soak: the release binary and the soak example built, then 500 clients
# for 45 s of load with faults, then a drain (about 62 s in all; killed at 3 minutes).
# The table goes to target/soak.md; a failed check fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_INCREMENTAL=0
start=$SECONDS
cargo build --release -p wsguard --bins --example soak
echo "soak: build took $((SECONDS - start)) s"
step=$SECONDS
timeout 180 target/release/examples/soak --clients 500 --seconds 45 --out target/soak.md
echo "soak: run took $((SECONDS - step)) s (table in target/soak.md)"
