#!/bin/bash
# The hostile-peer suite (issue #12, docs/security.md): one wshostd process
# hosts healthy echo records beside records whose servers break the rules on
# purpose, and the healthy ones must keep echoing within a stated latency;
# afterwards the hostile records are disabled and every one of their sockets
# must be gone, the daemon's memory back near where it was.
#   integration/hostile/run.sh [--bin DIR]   (DIR holds wshostd and wshostctl; default: the debug build)
# Prints "hostile: N passed, 0 failed" or fails. About a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=""
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        *) sed -n '2,8p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$bin" ] || bin=$(swift build --package-path "$root" --show-bin-path)
python="$root/.venv/bin/python"
work=$(mktemp -d /tmp/wshostd-hostile.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
passed=0
fail() { echo "hostile: FAILED: $*" >&2; echo "--- daemon log (tail)" >&2; tail -30 "$work/daemon.log" >&2 || true; exit 1; }
pass() { passed=$((passed + 1)); echo "ok: $*"; }

# peer NAME MODE [ARG]: a Tests/peers/ws_peer.py server; sets $port.
peer() {
    "$python" "$root/Tests/peers/ws_peer.py" "${@:2}" >"$work/$1.out" 2>"$work/$1.err" &
    for _ in $(seq 200); do
        port=$(sed -n 's/^PORT //p' "$work/$1.out" | head -1)
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    fail "peer $1 did not start: $(cat "$work/$1.err")"
}
peer ignore ignore-close; p_ignore=$port
peer pings ping-flood 2000000; p_pings=$port
peer empty empty-continuations; p_empty=$port
peer partial partial $((15 << 20)); p_partial=$port
peer flood flood 2000000; p_flood=$port
peer bomb deflate-bomb 512; p_bomb=$port  # 512 MiB of zeros in one compressed frame of ~0.5 MiB
cc -O2 -o "$work/server" "$root/bench/wsbench_server.c" -lssl -lcrypto -lz
healthy=20
window=10
p_bench=$((20000 + RANDOM % 20000))

{
    printf '[log]\nlevel = "notice"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n' "$work"
    printf '[control]\nsocket = "%s/control.sock"\n' "$work"
    printf '[websocket]\nconnect_retry_interval = "1h"\nclose_timeout = "1s"\nsend_queue_limit = "1MiB"\n'
    # A budget the 15 MiB partial frames reach, so that it is seen at work.
    # The healthy records are a closed echo loop with their server, as fast
    # as it goes: no send rate limit here (its test: HostTests.echoLoopEnds).
    printf '[limits]\ninbound_budget = "64MiB"\nsends_per_second = 0\n'
    printf '[security]\nallowed_url_hosts = ['
    for p in $p_ignore $p_pings $p_empty $p_partial $p_flood $p_bomb $p_bench; do printf '"127.0.0.1:%s", ' "$p"; done
    printf ']\n[[users]]\nid = "host"\n'
    printf '[[sessions]]\nid = "healthy"\nhost = "host"\n'
    for i in $(seq $healthy); do
        printf '[[sessions.objects]]\nid = "h%s"\nurl = "ws://127.0.0.1:%s/"\n' "$i" "$p_bench"
        printf '[[sessions.objects.reactions]]\non = "received"\necho = true\n'
    done
} >"$work/wshostd.toml"

"$work/server" "$p_bench" "$healthy" 16 "$window" 1 echo >"$work/bench.out" 2>"$work/bench.err" &
bench_pid=$!
for _ in $(seq 100); do grep -q LISTENING "$work/bench.out" 2>/dev/null && break; sleep 0.05; done
"$bin/wshostd" --config "$work/wshostd.toml" 2>"$work/daemon.log" &
daemon=$!
ctl() { "$bin/wshostctl" --socket "$work/control.sock" "$@"; }
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$daemon/status"; }
sockets_to() {  # open TCP sockets of the daemon to port $1
    local inodes
    inodes=$(ls -l "/proc/$daemon/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p' | sort -u)
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v port="$hex" 'NR > 1 && substr($3, length($3) - 4) == port {print $10}' /proc/net/tcp /proc/net/tcp6 |
        sort -u | comm -12 - <(echo "$inodes") | wc -l
}
sleep 2
baseline=$(rss)
echo "daemon RSS with $healthy healthy records: $((baseline / 1024)) MiB"

# The hostile records, then the measured window of the healthy ones.
ctl sessions start hostile --host host >/dev/null
add() {  # add ID PORT [COMPRESSION]
    ctl objects spawn hostile "$1" >/dev/null
    [ -z "${3:-}" ] || ctl ws set hostile "$1" --compression "$3" >/dev/null
    ctl ws connect hostile "$1" --url "ws://127.0.0.1:$2/" >/dev/null
}
for i in 1 2 3; do add "ignore$i" "$p_ignore"; add "pings$i" "$p_pings"; add "empty$i" "$p_empty"; done
for i in $(seq 8); do add "partial$i" "$p_partial"; done
add flood1 "$p_flood"
for i in 1 2 3; do add "bomb$i" "$p_bomb" on; done
wait "$bench_pid" || fail "the healthy records' echo server: $(cat "$work/bench.err")"
result=$(grep '^{' "$work/bench.out" | tail -1)
echo "healthy echo under attack: $result"
peak=$(rss)
p99=$(echo "$result" | jq -r '.p99_us')
messages=$(echo "$result" | jq -r '.messages')
[ "$messages" -gt 1000 ] || fail "the healthy records hardly echoed: $result"
pass "$healthy healthy records echoed $messages messages in ${window} s beside the hostile servers"
# Stated latency: p99 of a healthy round trip at most 250 ms. A debug build on 2 cores
# shared with the five Python servers of the attack and the C echo server; measured
# 15-38 ms on a quiet day, 70-130 ms on a busy one (the release before #13 alike).
awk -v p="$p99" 'BEGIN { exit !(p <= 250000) }' || fail "healthy p99 ${p99} µs > 250 ms"
pass "healthy p99 round trip ${p99} µs (≤ 250 ms)"

show() { ctl --json ws show hostile "$1"; }
# What each hostile server met.
[ "$(show empty1 | jq -r '.record.lastError')" != null ] &&
    show empty1 | jq -r '.record.lastError' | grep -q "more than 131072 frames" ||
    fail "empty continuations: $(show empty1 | jq -c .record)"
pass "endless empty continuation frames: closed with 1008"
# The partial servers' 120 MiB arrive while the healthy window runs; on a loaded
# machine the last of it may still be arriving when the window ends: up to 20 s more.
budget=0
deadline=$((SECONDS + 20))
while :; do
    budget=0
    for i in $(seq 8); do show "partial$i" | jq -r '.record.lastError' | grep -q "budget" && budget=$((budget + 1)); done
    [ "$budget" -lt 4 ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
done
[ "$budget" -ge 4 ] || fail "inbound budget: only $budget of 8 partial-frame records refused within 20 s"
pass "15 MiB partial frames: $budget of 8 refused by the 64 MiB inbound budget"
# The flood record is added last (it may have opened just now): give it time to flood.
flood=0
for _ in $(seq 150); do
    flood=$(show flood1 | jq -r '.record.floods')
    [ "$flood" -ge 1 ] && break
    sleep 0.1
done
[ "$flood" -ge 1 ] || fail "flood: $(show flood1 | jq -c .record)"
pass "2 M messages: a flood, closed with 1008"
# The decompression bombs: each is refused with 1009 once the inflated message
# passes max_message_size (16 MiB), never inflated further.
# The records connect one after another: give the last one time.
for i in 1 2 3; do
    for _ in $(seq 300); do show "bomb$i" | jq -r '.record.lastError' | grep -q "larger than" && break; sleep 0.1; done
    show "bomb$i" | jq -r '.record.lastError' | grep -q "message larger than the 16777216-byte limit" ||
        fail "bomb: $(show "bomb$i" | jq -c .record)"
done
[ "$(grep -c '^SENT' "$work/bomb.out")" -ge 3 ] || fail "the bomb server did not send its frames: $(cat "$work/bomb.err")"
pass "3 decompression bombs (512 MiB of zeros in ~0.5 MiB frames): each closed with 1009"

# Disable every hostile record: each socket is gone within close_timeout
# (servers that ignore our Close included), memory comes back.
for id in ignore1 ignore2 ignore3 pings1 pings2 pings3 empty1 empty2 empty3 flood1 bomb1 bomb2 bomb3 $(seq -f 'partial%g' 8); do
    ctl ws set hostile "$id" --enabled false >/dev/null
done
sleep 3
for p in $p_ignore $p_pings $p_empty $p_partial $p_flood $p_bomb; do
    left=$(sockets_to "$p")
    [ "$left" = 0 ] || fail "$left sockets to port $p still open 3 s after disabling"
done
pass "every hostile socket closed within 3 s of disabling (close_timeout 1 s)"
ctl reload >/dev/null  # a reload hands free heap back (malloc_trim), as after start
sleep 12
after=$(rss)
echo "daemon RSS: baseline $((baseline / 1024)) MiB, peak $((peak / 1024)) MiB, after $((after / 1024)) MiB"
[ "$after" -le $((baseline + 48 * 1024)) ] || fail "RSS $((after / 1024)) MiB, baseline $((baseline / 1024)) MiB"
pass "RSS back within 48 MiB of the baseline"
kill -0 "$daemon" || fail "the daemon died"
pass "the daemon is still running"
echo "hostile: $passed passed, 0 failed"
