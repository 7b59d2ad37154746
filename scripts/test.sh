#!/bin/bash
# The whole test suite: formatting, unit and end-to-end tests (swift test),
# and the shipped unit under real systemd and journald.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh

echo "== swift format lint"
swift format lint --strict -r Sources Tests Package.swift

echo "== swift build"
swift build --build-tests

echo "== swift test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift test --skip-build 2>&1 | tee "$log" | grep -vE '^(◇|↳|\[)| started\.$|passed after' || true
status=${PIPESTATUS[0]}
unit=$(sed -nE 's/.*Test run with ([0-9]+) tests? .* passed after.*/\1/p' "$log" | tail -1)
[ "$status" = 0 ] && [ -n "$unit" ] || { echo "swift test failed (status $status)"; exit 1; }

echo "== systemd (real PID 1 and journald in a sandbox)"
scripts/test-systemd.sh | tee "$log"
sd=$(sed -nE 's/^([0-9]+) passed, 0 failed$/\1/p' "$log" | tail -1)
[ -n "$sd" ] || { echo "systemd checks failed"; exit 1; }

echo "== summary: swift test $unit passed; systemd $sd passed"
echo "$((unit + sd)) passed, 0 failed"
