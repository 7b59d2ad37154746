#!/bin/bash
# The daemon's main job so far, with no network: start wshostd on the example
# config, reload it (a valid change, then a broken file that is refused), stop
# it; then the WebSocket client its records will use, against loopback peers
# (ws, wss with a throw-away CA, and a refused certificate).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
swift build --package-path "$root" --product wshostd >&2
bin=$(swift build --package-path "$root" --show-bin-path)/wshostd
work=$(mktemp -d /tmp/wshostd-demo.XXXXXX)
trap '[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
config=$work/wshostd.toml
cp "$root/config/wshostd.toml" "$config"
step() { printf '\n== %s\n' "$*"; }

step "wshostd --check-config --config $config"
"$bin" --check-config --config "$config"

step "start the daemon (logs below are its stderr)"
"$bin" --config "$config" &
pid=$!
sleep 1

step "change log.level to debug and send SIGHUP: the new file is applied"
sed -i 's/^level = "info"/level = "debug"/' "$config"
kill -HUP "$pid"
sleep 0.5

step "break the file and send SIGHUP: refused, the running config is kept"
sed -i 's/^idle_timeout = "60s"/idle_timeout = 60/' "$config"
kill -HUP "$pid"
sleep 0.5
kill -0 "$pid" && echo "(still running as pid $pid)"

step "send SIGTERM: the daemon stops cleanly"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
echo "(exit status $status)"
[ "$status" = 0 ] || exit "$status"

# The WebSocket client the daemon's records will use, against local peers.
swift build --package-path "$root" --product wsprobe >&2
probe=$(dirname "$bin")/wsprobe
peer() {  # peer MODE [ARGS...]: start a loopback server; sets $port
    "$root/.venv/bin/python" "$root/Tests/peers/ws_peer.py" "$@" >"$work/peer.out" 2>&1 &
    peers+=($!)
    for _ in $(seq 100); do grep -q '^PORT ' "$work/peer.out" 2>/dev/null && break; sleep 0.1; done
    port=$(sed -n 's/^PORT //p' "$work/peer.out")
}
peers=()
trap '[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null; for p in "${peers[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

step "wsprobe: echo over ws:// through a python-websockets server on loopback"
peer echo
"$probe" echo "ws://localhost:$port/demo" --send "hello from wshostd" --once

step "wsprobe: the same over wss:// with a throw-away CA"
"$root/.venv/bin/python" "$root/Tests/peers/make_certs.py" "$work"
peer wss-echo "$work/good.pem" "$work/good.key"
"$probe" echo "wss://localhost:$port/demo" --ca-file "$work/ca.pem" --send "hello over TLS" --once

step "wsprobe: a certificate for another host is refused"
peer wss-echo "$work/wronghost.pem" "$work/wronghost.key"
"$probe" echo "wss://localhost:$port/demo" --ca-file "$work/ca.pem" --once || true
