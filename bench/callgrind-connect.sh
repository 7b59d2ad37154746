#!/bin/bash
# Instructions per connect of wshostd's ws connect path, counted by callgrind:
# repeatable on a noisy VM where CPU times swing by tens of percent.
#
#   bench/callgrind-connect.sh [WSHOSTD] [OUT]
#
# WSHOSTD: a release wshostd (default: .build-release/release/wshostd, built if
# missing); OUT: the callgrind profile (default /tmp/wshostd-connect.callgrind).
# Runs the C server's connect mode on loopback for 20 s against 20 records
# retrying every 100 ms, counts only the poller's turns (not start-up), and
# prints the instructions per connect (per WebSocketClient connect started).
# Read the profile with: callgrind_annotate --inclusive=yes OUT | less
# Needs valgrind (apt-get install valgrind). Valgrind cannot read the Swift
# toolchain's DWARF here, so a copy without debug info is profiled (the
# symbol table stays: function names are kept).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/.build-release/release/wshostd}
out=${2:-/tmp/wshostd-connect.callgrind}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${1:-}" ]; then
    swift build --package-path "$root" -c release --scratch-path "$root/.build-release" --product wshostd >&2
fi
[ -x "$bin" ] || { echo "no wshostd at $bin" >&2; exit 1; }
work=$(mktemp -d /tmp/wscallgrind.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { # the reason, then what the server and valgrind said
    echo "$1" >&2
    cat "$work/server.out" "$work/valgrind.log" >&2 2>/dev/null || true
    exit 1
}
cc -O2 -Wall -o "$work/server" "$root/bench/wsbench_server.c" -lssl -lcrypto -lz
objcopy --strip-debug "$bin" "$work/wshostd"
port=9390
{
    printf '[log]\nlevel = "warning"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n' "$work"
    printf '[control]\nsocket = "%s/control.sock"\n' "$work"
    printf '[websocket]\nidle_timeout = "1h"\nconnect_retry_interval = "100ms"\n'
    printf '[limits]\nsends_per_second = 0\nconnect_attempts_per_second = 0\nconnect_attempts_per_destination = 0\n'
    printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$port"
    printf '[[users]]\nid = "host"\n[[sessions]]\nid = "bench"\nhost = "host"\n'
    for i in $(seq 20); do
        printf '[[sessions.objects]]\nid = "o%s"\nurl = "ws://127.0.0.1:%s/"\n' "$i" "$port"
        printf '[[sessions.objects.reactions]]\non = "received"\necho = true\n'
    done
} >"$work/wshostd.toml"
"$work/server" "$port" 20 0 20 1 connect 0 >"$work/server.out" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q LISTENING "$work/server.out" && break; sleep 0.05; done
grep -q LISTENING "$work/server.out" || fail "the C server did not start (port $port taken?)"
valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no --toggle-collect='*Poller*turn*' \
    "$work/wshostd" --config "$work/wshostd.toml" 2>"$work/valgrind.log" &
daemon=$!
wait "$server" || fail "the C server failed"
# (SIGTERM: a background job of a script starts with SIGINT ignored)
kill -TERM "$daemon" 2>/dev/null || true
wait "$daemon" || true
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' || true)
# The calls of Connector.connect made from WebSocketClient.start: one per connect
# (--threshold=100: start's own cost is too small for the default listing).
connects=$(callgrind_annotate --threshold=100 --tree=calling "$out" 2>/dev/null |
    grep -A40 -E '^ *[0-9,]+ .*\*  \?\?\?:\$s15WebSocketClientAAC5startyyF \[' |
    grep -m1 -oP '>   \?\?\?:\$s9EventLoop9ConnectorC7connect4host[^ ]* \(\K[0-9,]+' | tr -d , || true)
[ -n "$total" ] && [ -n "$connects" ] && [ "$connects" -gt 0 ] || fail "no connects counted (see $out)"
echo "{\"instructions\":$total,\"connects\":$connects,\"per_connect\":$((total / connects)),\"profile\":\"$out\"}"
