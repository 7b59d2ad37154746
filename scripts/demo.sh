#!/bin/bash
# The daemon's main job so far, with no network: wshostd on the example config
# (reload applied, reload refused, stop); then a declared world hosted against
# a loopback echo server (connect, greet, consent, reload, Close 1001 on stop);
# then the WebSocket client alone over ws and wss (and a refused certificate).
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

peer() {  # peer MODE [ARGS...]: start a loopback server; sets $port
    "$root/.venv/bin/python" "$root/Tests/peers/ws_peer.py" "$@" >"$work/peer.out" 2>&1 &
    peers+=($!)
    for _ in $(seq 100); do grep -q '^PORT ' "$work/peer.out" 2>/dev/null && break; sleep 0.1; done
    port=$(sed -n 's/^PORT //p' "$work/peer.out")
}
peers=()
trap '[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null; for p in "${peers[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

step "a world: a loopback echo server, and a config declaring users, a session and objects"
peer echo-log
world=$work/world.toml
sed "s/@PORT@/$port/g" "$root/config/demo-world.toml" >"$world"
grep -vE '^\s*(#|$)' "$world" | head -60

step "start the daemon: the greeter (host's decision) and ann's ticker (ann's decision) connect and say hello; ann's toy is denied by her earlier decision, her badge prompts her, the stranger is denied (headless host)"
"$bin" --config "$world" &
pid=$!
sleep 1.5

step "add an object to the file and reload: it appears and connects"
printf '\n[[sessions.objects]]\nid = "newcomer"\nurl = "ws://127.0.0.1:%s/new"\n[[sessions.objects.reactions]]\non = "connected"\nsend = "hi, I am new"\n' "$port" >>"$world"
kill -HUP "$pid"
sleep 1

step "stop: every socket gets Close 1001, the daemon exits 0"
kill -TERM "$pid"
wait "$pid"
pid=
sleep 0.3
echo "the echo server saw:"
grep CLOSED "$work/peer.out"   # greeter, ann's ticker, newcomer

# The WebSocket client the daemon's records will use, against local peers.
swift build --package-path "$root" --product wsprobe >&2
probe=$(dirname "$bin")/wsprobe

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
