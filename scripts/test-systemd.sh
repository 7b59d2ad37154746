#!/bin/bash
# Runs the shipped unit with the built binaries under real systemd and
# journald (../shared/tools/systemd-sandbox), then integration/systemd/check.sh.
#   scripts/test-systemd.sh [BINARY_DIR]     (default: .build/debug)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/.build/debug}
sandbox=${SYSTEMD_SANDBOX:-$root/../shared/tools/systemd-sandbox/run-under-systemd.sh}
[ -x "$sandbox" ] || [ -f "$sandbox" ] || { echo "systemd sandbox not found at $sandbox" >&2; exit 1; }
payload=$(mktemp -d /tmp/wshostd-payload.XXXXXX)
trap 'rm -rf "$payload"' EXIT
mkdir -p "$payload/bin" "$payload/systemd" "$payload/config"
cp "$bin/wshostd" "$bin/wshostctl" "$payload/bin/"
# A second wshostd with the test-only loop-stall switch, for the watchdog proof.
WSHOSTD_FAULT_INJECTION=1 swift build --package-path "$root" --scratch-path "$root/.build-faults" --product wshostd >&2
cp "$root/.build-faults/debug/wshostd" "$payload/bin/wshostd-faults"
# Layout install.sh expects (its root is its parent directory).
mkdir -p "$payload/scripts"
cp "$root/scripts/install.sh" "$payload/scripts/"
cp "$root/systemd/wshostd.service" "$root/systemd/wshostd.socket" "$root/systemd/wshostd.sysusers" "$payload/systemd/"
cp "$root/config/wshostd.toml" "$payload/config/"
cp "$root/config/wshostd.toml" "$payload/wshostd.toml"
cp "$root/README.md" "$payload/"
cp "$root/integration/systemd/setup.sh" "$payload/"
# The loopback WebSocket peer the state checks connect 200 records to, with
# its venv (the container does not see the host's /tmp, where a clone may live).
[ -x "$root/.venv/bin/python" ] || { echo "$root/.venv missing: run scripts/setup.sh" >&2; exit 1; }
cp "$root/Tests/peers/ws_peer.py" "$payload/"
cp -a "$root/.venv" "$payload/venv"
# The unit is installed by setup.sh (through install.sh) and started by name.
bash "$sandbox" ${VERBOSE:+-v} --check-timeout 300 -e PEER_PYTHON=/sandbox/venv/bin/python -u wshostd.service "$payload" \
    "$root/integration/systemd/check.sh"
