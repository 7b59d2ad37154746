#!/bin/bash
# The daemon's main job, with no network: wshostd on the example config
# (reload applied, reload refused, stop); then a declared world hosted against
# loopback echo servers and operated with wshostctl (connect, greet, a consent
# prompt answered through `consent watch`, send, events, disconnect, reload,
# Close 1001 on stop); then the WebSocket client alone over ws and wss.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
swift build --package-path "$root" --product wshostd >&2
swift build --package-path "$root" --product wshostctl >&2
bin=$(swift build --package-path "$root" --show-bin-path)/wshostd
ctl() { echo "\$ wshostctl $*"; "$(dirname "$bin")/wshostctl" --socket "$work/control.sock" "$@"; }
work=$(mktemp -d /tmp/wshostd-demo.XXXXXX)
trap '[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
config=$work/wshostd.toml
sed "s|^socket = .*|socket = \"$work/control.sock\"|; s|^state_directory = .*|state_directory = \"$work/state\"|" \
    "$root/config/wshostd.toml" >"$config"
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

step "a world: two loopback echo servers, and a config declaring users, a session and objects"
peer echo
port2=$port
peer echo-log
world=$work/world.toml
sed "s/@PORT@/$port/g; s/@PORT2@/$port2/g; s|@WORK@|$work|g" "$root/config/demo-world.toml" >"$world"
grep -vE '^\s*(#|$)' "$world" | head -70

step "start the daemon: the greeter (host's decision) and ann's ticker (ann's decision) connect and say hello; ann's toy is denied by her earlier decision, her badge prompts her, the stranger is denied (headless host)"
"$bin" --config "$world" 2>"$work/daemon.log" &
pid=$!
sleep 1.5
sed 's/^/  daemon| /' "$work/daemon.log"

step "operate it with wshostctl over the control socket"
ctl status
ctl objects list lobby

step "ann answers her badge's prompt on her consent channel (the answer is typed on stdin)"
(sleep 0.5; echo allow; sleep 0.5) | ctl consent watch ann
sleep 0.3
ctl consent list ann
ctl objects list lobby

step "the Text Message Sender, and the events the echo produced"
ctl events --follow --type received >"$work/events.out" &
follower=$!
sleep 0.3
ctl ws send lobby ann-badge --text "hello from ann's badge"
sleep 0.3
kill "$follower"
cat "$work/events.out"

step "explicit disconnect: the record stays down until Connect"
ctl ws disconnect lobby ann-badge
ctl ws connect lobby ann-badge | grep -E "^(URL|HandlingUser|state):"

step "add an object to the file and reload (wshostctl reload = SIGHUP): it appears and connects"
printf '\n[[sessions.objects]]\nid = "newcomer"\nurl = "ws://127.0.0.1:%s/new"\n[[sessions.objects.reactions]]\non = "connected"\nsend = "hi, I am new"\n' "$port" >>"$world"
ctl reload
sleep 1
ctl objects list lobby

step "stop: every socket gets Close 1001, the daemon exits 0"
kill -TERM "$pid"
wait "$pid"
pid=
sleep 0.3
echo "the daemon's log (stderr; message debug lines left out):"
grep -vE 'debug wshostd: (sent|received text)' "$work/daemon.log" | sed 's/^/  daemon| /'
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
