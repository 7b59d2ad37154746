#!/bin/bash
# libFuzzer over the code that reads hostile input (docs/security.md):
#   FuzzFrames   the WebSocket client core fed by a hostile server
#   FuzzControl  control request lines from any local user
#   FuzzConfig   any bytes as a config file
# usage: scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]
# Each target runs N seconds (default 60) from its checked-in seed corpus
# (fuzz/corpus/*); new inputs go to a scratch corpus under .build-fuzz/ and
# crashes to .build-fuzz/crashes/. Exits non-zero on any crash, leak or timeout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(FuzzFrames FuzzControl FuzzConfig)

scratch=$root/.build-fuzz
mkdir -p "$scratch"
echo "fuzz: building (debug, -sanitize=fuzzer,address) into $scratch"
swift build --package-path fuzz --scratch-path "$scratch" -c debug --sanitize=fuzzer --sanitize=address \
    >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log"; echo "fuzz: build failed"; exit 1; }
bin=$(swift build --package-path fuzz --scratch-path "$scratch" -c debug --show-bin-path)

status=0
mkdir -p "$scratch/crashes"
for target in "${targets[@]}"; do
    case "$target" in
        FuzzFrames) seeds=fuzz/corpus/frames ;;
        FuzzControl) seeds=fuzz/corpus/control ;;
        FuzzConfig) seeds=fuzz/corpus/config ;;
        *) echo "fuzz: unknown target $target"; exit 2 ;;
    esac
    work=$scratch/corpus/$target
    mkdir -p "$work"
    log=$scratch/$target.log
    # -rss_limit_mb: the harnesses bound every message; more than this is a bug.
    # The Swift runtime's own crash report adds a second, noisy ASan report
    # after a real crash (SWIFT-LINUX-NOTES.md); the first one and the saved
    # input are what count.
    if ASAN_OPTIONS=detect_leaks=0 "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="$scratch/crashes/$target-" -print_final_stats=1 \
        "$work" "$seeds" >"$log" 2>&1; then
        runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
        echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, no crash"
    else
        status=1
        grep -E "ERROR|==ERROR|Fatal error|Assertion|SUMMARY|Test unit written" "$log" | head -20
        echo "fuzz: $target FAILED (log: $log)"
    fi
done
exit $status
