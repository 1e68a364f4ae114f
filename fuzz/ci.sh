#!/usr/bin/env bash
# CI fuzzing: builds every fuzz target in one `cargo fuzz build` (one build
# of the dependencies), then runs each for FUZZ_SECONDS (default 20) from its
# committed seeds (fuzz/seeds/<target>/; new inputs go to the ignored
# fuzz/corpus/<target>/). A crash fails the run; its input is left in
# fuzz/artifacts/<target>/ (turn it into a regression test under tests/).
# Prints the seconds each step took. Installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-20}"
targets=(wire_decoder classifier config_loader header_policy)
export CARGO_INCREMENTAL=0
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address).
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
start=$SECONDS
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
echo "fuzz: cargo-fuzz ready after $((SECONDS - start)) s"
step=$SECONDS
cargo fuzz build
echo "fuzz: build of ${#targets[@]} targets took $((SECONDS - step)) s"
for target in "${targets[@]}"; do
    step=$SECONDS
    mkdir -p "corpus/$target"
    log="corpus/$target.log"
    if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        cat "$log"
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$log" || tail -n 3 "$log"
    echo "fuzz: $target ran $((SECONDS - step)) s"
done
echo "fuzz: total $((SECONDS - start)) s"
