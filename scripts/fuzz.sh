#!/usr/bin/env bash
# Fuzzes the parsers of what users, files and servers hand to s2cr (cargo-fuzz, libFuzzer;
# needs a nightly toolchain). Each target runs FUZZ_SECONDS (default 600); crashes land in
# fuzz/artifacts/<target>/, logs with the run's statistics in fuzz/logs/. Not part of CI.
#   FUZZ_TARGETS="aoi stac_item" FUZZ_SECONDS=60 make fuzz
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
cargo +nightly fuzz build --sanitizer none $targets
for t in $targets; do
    echo "== $t: $seconds s"
    cargo +nightly fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        2>&1 | tee "fuzz/logs/$t.log" | grep -E '^#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|SUMMARY|panicked' || true
done
ls fuzz/artifacts/*/ 2>/dev/null && echo "crashes above: each becomes a regression test" || echo "no crashes"
