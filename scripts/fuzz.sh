#!/usr/bin/env bash
# Fuzzes the parsers of what users, files and servers hand to s2cr (cargo-fuzz, libFuzzer;
# needs a nightly toolchain). Each target runs FUZZ_SECONDS (default 600); crashes land in
# fuzz/artifacts/<target>/, logs with the run's statistics in fuzz/logs/. FUZZ_JOBS targets run
# at a time (default 1). Not part of CI.
#   FUZZ_TARGETS="aoi stac_item" FUZZ_SECONDS=60 FUZZ_JOBS=2 make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-"aoi project_yaml pipeline_yaml stac_item manifest s1_xml"}
shared=${S2CR_SHARED:-../shared}
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzzing needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
python3 scripts/fuzz_seeds.py "$shared" fuzz/corpus
mkdir -p fuzz/logs
# No sanitizer: the targets are safe Rust over C libraries built without one; libFuzzer finds
# panics, hangs and runaway memory.
cargo +nightly fuzz build --sanitizer none
jobs=${FUZZ_JOBS:-1}
run() {
    cargo +nightly fuzz run --sanitizer none "$1" "fuzz/corpus/$1" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        > "fuzz/logs/$1.log" 2>&1 || true
    local done_line crashes
    done_line=$(grep -h '^Done [0-9]* runs in' "fuzz/logs/$1.log" || true)
    crashes=$(ls "fuzz/artifacts/$1" 2>/dev/null | grep -c '^crash-\|^timeout-\|^oom-' || true)
    if [ -n "$done_line" ]; then
        echo "== $1: ${done_line#Done }, $crashes crashes"
    else
        echo "== $1: stopped after $(grep -h 'stat::number_of_executed_units' "fuzz/logs/$1.log" | awk '{print $2}') runs at a crash ($crashes in fuzz/artifacts/$1)"
    fi
}
running=0
for t in $targets; do
    run "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
ls fuzz/artifacts/*/ 2>/dev/null && echo "crashes above: each becomes a regression test" || echo "no crashes"
