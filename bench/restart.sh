#!/bin/bash
# The restart benchmark (issue #14, docs/performance.md): records coming back
# at once, measured against the C server peer (bench/wsbench_server.c, mode
# hold), with the daemon's own metrics for its loop.
#   1. restart: RECORDS records open; `kill -9` the daemon and start it again.
#      Reported: seconds until every record is open again (from the new
#      process's start), the peak connection rate the server saw (handshakes
#      in 100 ms and in 1 s), and the loop's longest stall meanwhile: the
#      daemon's loop-lag histogram (how late due timers ran) and a control
#      client that sends `hello` every 5 ms (the longest answer). Once per
#      pace: "default" ([limits] connect_attempts_per_destination = 100/s) and
#      "unpaced" (both attempt limits off: every record at once).
#   2. waves: WAVE_RECORDS records; the server cuts every connection (TCP,
#      as a restarting proxy does) and they reconnect, again and again; the
#      daemon's RSS after each wave named in WAVES (goal: the last within
#      10 % of the first).
#   bench/restart.sh [--smoke] [--check] [--tls] [--bin DIR] [--records N] [--wave-records N]
#                    [--waves "10 100"] [--paces "default unpaced"]
# --tls: every record over wss (the server's certificate from a CA made here).
# --smoke: small and quick, numbers kept out of git; --check fails when the
# RSS after the last wave exceeds the first by more than 10 % (the test suite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
records=15000
wave_records=1000
waves="10 100"
paces="default unpaced"
smoke=""
check=""
tls=""
bin=""
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) smoke=1; records=300; wave_records=200; waves="10 40"; shift ;;
        --check) check=1; shift ;;
        --tls) tls=1; shift ;;
        --bin) bin=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        --wave-records) wave_records=$2; shift 2 ;;
        --waves) waves=$2; shift 2 ;;
        --paces) paces=$2; shift 2 ;;
        *) sed -n '2,22p' "$0" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    swift build --package-path "$root" -c release --scratch-path "$root/.build-release" --product wshostd >&2
    swift build --package-path "$root" -c release --scratch-path "$root/.build-release" --product wshostctl >&2
    bin="$root/.build-release/release"
fi
work=$(mktemp -d /tmp/wshostd-restart.XXXXXX)
cleanup() {
    local status=$?
    if [ "$status" != 0 ]; then
        for f in "$work"/*/daemon.log; do [ -s "$f" ] && { say "== $f"; tail -20 "$f" >&2; }; done
        say "daemon alive: $(kill -0 "${daemon_pid:-0}" 2>/dev/null && echo yes || echo no)"
    fi
    kill -9 $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -Wall -o "$work/server" "$root/bench/wsbench_server.c" -lssl -lcrypto -lz
# Below the ephemeral range (32768-60999), where 15,000 outgoing connections take their local ports.
free_port() { echo $((20000 + RANDOM % 12000)); }
now() { date +%s.%N; }
say() { echo "$*" >&2; }
scheme=ws
if [ -n "$tls" ]; then
    scheme=wss
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=wsbench-ca -keyout "$work/ca.key" -out "$work/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$work/san.ext"
    openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
        -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null
    export WSBENCH_CERT=$work/server.pem WSBENCH_KEY=$work/server.key
fi
results="$work/results.jsonl"
: >"$results"

# start_server NAME: a hold-mode server; sets $server_port and $server_pid
# (another port when the one drawn is taken).
start_server() {
    for _ in 1 2 3 4 5; do
        server_port=$(free_port)
        "$work/server" "$server_port" 1 0 100000 0 hold >"$work/$1.server" 2>&1 &
        server_pid=$!
        for _ in $(seq 100); do
            grep -q LISTENING "$work/$1.server" 2>/dev/null && return
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.05
        done
    done
    say "the server did not start: $(cat "$work/$1.server")"; exit 1
}
# (light: the polling must not take the CPU the daemon is measured with)
server_open() {
    local open
    open=$(tail -1 "$1" 2>/dev/null | sed -nE 's/.*"open":([0-9]+).*/\1/p')
    echo "${open:-0}"
}

# write_config NAME N LIMITS: N records on the server, in one session.
write_config() {
    local dir=$work/$1
    mkdir -p "$dir/state"
    {
        printf '[log]\nlevel = "notice"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n' "$dir"
        printf '[control]\nsocket = "%s/control.sock"\n' "$dir"
        printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$server_port"
        [ -z "$tls" ] || printf '[tls]\nca_file = "%s/ca.pem"\n' "$work"
        printf '%b' "$3"
        printf '[[users]]\nid = "host"\n[[sessions]]\nid = "s"\nhost = "host"\n'
        for i in $(seq "$2"); do printf '[[sessions.objects]]\nid = "r%s"\nurl = "%s://127.0.0.1:%s/"\n' "$i" "$scheme" "$server_port"; done
    } >"$dir/wshostd.toml"
}
start_daemon() {
    "$bin/wshostd" --config "$work/$1/wshostd.toml" 2>>"$work/$1/daemon.log" &
    daemon_pid=$!
}
# await_open FILE N SECONDS: until the server holds N connections.
await_open() {
    local deadline=$(( $(date +%s) + $3 ))
    while [ "$(server_open "$1")" != "$2" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "only $(server_open "$1") of $2 open after $3 s"; return 1; }
        sleep 0.05
    done
}

# The control probe: `hello` every 5 ms, the longest answer (ms) once told to stop.
cat >"$work/probe.py" <<'EOF'
import json, os, socket, sys, time
path, stop = sys.argv[1], sys.argv[2]
while not os.path.exists(path):
    time.sleep(0.001)
s = None
while s is None:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path)
    except OSError:
        s = None; time.sleep(0.001)
f = s.makefile("rwb")
worst = 0.0; worst_at = 0.0; count = 0; start = time.monotonic()
while not os.path.exists(stop):
    t = time.monotonic()
    f.write(b'{"op":"hello"}\n'); f.flush(); f.readline()
    if time.monotonic() - t > worst:
        worst = time.monotonic() - t; worst_at = t - start
    count += 1
    time.sleep(0.005)
print(json.dumps({"probe_max_ms": round(worst * 1000, 1), "probe_max_at_s": round(worst_at, 1), "probes": count}))
EOF

# lag_summary NAME BASE: from the loop-lag histogram (`wshostctl metrics`) since
# the snapshot BASE, the smallest bucket holding every observation (the longest
# lag is at most that), and the observations over 10 ms.
lag_summary() {
    "$bin/wshostctl" --socket "$work/$1/control.sock" metrics | awk -v base="$2" '
        BEGIN {
            while ((getline line < base) > 0) {
                if (line ~ /^wshostd_loop_lag_seconds_bucket/) { match(line, /le="[^"]+"/); split(line, f, " "); b[substr(line, RSTART + 4, RLENGTH - 5)] = f[2] }
                if (line ~ /^wshostd_loop_lag_seconds_count/) { split(line, f, " "); btotal = f[2] }
            }
        }
        /^wshostd_loop_lag_seconds_bucket/ { match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[le] = $2 - b[le]; order[++k] = le }
        /^wshostd_loop_lag_seconds_count/ { total = $2 - btotal }
        END {
            bound = "+Inf"; over = 0
            for (i = 1; i <= k; i++) { if (order[i] == "0.01") over = total - n[order[i]] }
            # buckets are cumulative: the first le whose count is the total
            best = 1e9
            for (i = 1; i <= k; i++) if (n[order[i]] == total && order[i] != "+Inf" && order[i] + 0 < best) best = order[i] + 0
            printf "{\"lag_timer_wakeups\":%d,\"lag_max_le_ms\":%s,\"lag_over_10ms\":%d}\n", total, (best == 1e9 ? "null" : best * 1000), over
        }'
}

for pace in $paces; do
    limits=""
    [ "$pace" = default ] || limits='[limits]\nconnect_attempts_per_second = 0\nconnect_attempts_per_destination = 0\n'
    start_server "restart-$pace"
    write_config "restart-$pace" "$records" "$limits"
    start_daemon "restart-$pace"
    await_open "$work/restart-$pace.server" "$records" 600
    say "restart ($pace): $records records open; kill -9 and start again"
    kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 500); do [ "$(server_open "$work/restart-$pace.server")" = 0 ] && break; sleep 0.02; done
    mark=$(wc -l <"$work/restart-$pace.server")
    rm -f "$work/stop"
    t0=$(now)
    start_daemon "restart-$pace"
    # The start itself (reading the config and the state, before the loop
    # serves anything) is reported apart: the loop's lag is counted from the
    # first answer on the control socket.
    until "$bin/wshostctl" --socket "$work/restart-$pace/control.sock" metrics >"$work/lag-base" 2>/dev/null; do
        sleep 0.01
    done
    started_in=$(echo "$(now) - $t0" | bc)
    python3 "$work/probe.py" "$work/restart-$pace/control.sock" "$work/stop" >"$work/probe.json" &
    probe=$!
    await_open "$work/restart-$pace.server" "$records" 600
    t1=$(now)
    touch "$work/stop"; wait "$probe"
    lag=$(lag_summary "restart-$pace" "$work/lag-base")
    rate=$(tail -n +"$((mark + 1))" "$work/restart-$pace.server" | jq -s '
        [.[].handshakes] as $h
        | {peak_per_100ms: ($h | max), peak_per_s: ([range(0; ($h | length) - 9 | if . < 1 then 1 else . end) as $i | $h[$i:$i + 10] | add] | max)}')
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$daemon_pid/status")
    jq -n -c --arg pace "$pace" --arg scheme "$scheme" --argjson records "$records" --argjson seconds "$(echo "$t1 - $t0" | bc)" --argjson started "$started_in" \
        --argjson rate "$rate" --argjson lag "$lag" --argjson probe "$(cat "$work/probe.json")" --argjson rss "$rss" \
        '{scenario: "restart", scheme: $scheme, pace: $pace, records: $records, seconds_to_all_open: $seconds, start_s: $started, rss_kib: $rss} + $rate + $lag + $probe' |
        tee -a "$results" >&2
    kill -9 "$daemon_pid" "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
done

# Reconnect waves.
start_server waves
write_config waves "$wave_records" '[websocket]\nconnect_retry_interval = "500ms"\n[limits]\nconnect_attempts_per_second = 0\nconnect_attempts_per_destination = 0\n'
start_daemon waves
await_open "$work/waves.server" "$wave_records" 300
last=$(echo "$waves" | tr ' ' '\n' | sort -n | tail -1)
rss_first=""
started=$(now)
for wave in $(seq "$last"); do
    kill -USR1 "$server_pid"
    for _ in $(seq 500); do [ "$(server_open "$work/waves.server")" -lt "$wave_records" ] && break; sleep 0.01; done
    await_open "$work/waves.server" "$wave_records" 120
    if echo " $waves " | grep -q " $wave "; then
        sleep 1  # the wave's garbage settles (the delivery and close paths finish)
        rss=$(awk '/VmRSS/ { print $2 }' "/proc/$daemon_pid/status")
        [ -n "$rss_first" ] || rss_first=$rss
        jq -n -c --arg scheme "$scheme" --argjson wave "$wave" --argjson records "$wave_records" --argjson rss "$rss" \
            --argjson seconds "$(echo "$(now) - $started" | bc)" \
            '{scenario: "waves", scheme: $scheme, records: $records, wave: $wave, rss_kib: $rss, seconds: $seconds}' | tee -a "$results" >&2
    fi
done
growth=$(echo "scale=4; ($rss - $rss_first) / $rss_first * 100" | bc)
say "waves: RSS ${rss_first} KiB after wave $(echo "$waves" | awk '{print $1}'), ${rss} KiB after wave $last (${growth} %)"

date=$(date -u +%Y-%m-%d)
name=$date-restart${tls:+-tls}
[ -z "$smoke" ] || name=tmp/smoke-restart
mkdir -p "$root/bench/results/tmp"
cp "$results" "$root/bench/results/$name.jsonl"
say "saved bench/results/$name.jsonl"
if [ -n "$check" ]; then
    if [ "$(echo "$growth > 10" | bc)" = 1 ]; then
        say "waves: FAILED: RSS grew ${growth} % from wave $(echo "$waves" | awk '{print $1}') to wave $last (limit 10 %)"
        exit 1
    fi
    echo "waves: RSS within 10 % over $last waves (${growth} %)"
fi
