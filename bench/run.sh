#!/bin/bash
# The benchmark suite's entry command (bench/README.md). Builds the C peers and
# a release wshostd, then runs each scenario with every client in turns,
# interleaved, REPEATS times; the server is pinned to core 0, the client to
# core 1. Prints one table per scenario with ratios from this run and saves
# them to bench/results/DATE.md.
#   bench/run.sh [--smoke] [--repeats N] [--seconds S] [--scenarios "echo burst connect idle"]
#                [--case CONNS:SIZE]... [--clients "wshostd picows websockets raw-c"] [--idle-seconds S]
#                [--deflate nct|takeover] [--allocs]
# --allocs: also count the client's heap allocations over each window (perf uprobes on
# libc's malloc, calloc, realloc and posix_memalign; each costs the client a trap, so
# rates from such a run are not comparable with others; needs root).
# --deflate: the echo and idle scenarios with permessage-deflate (JSON-like text; clients
# wshostd, websockets and zlib, the cost of zlib alone; results in DATE-deflate-MODE.md).
# The client "wshostd-base" is the wshostd binary in $WSHOSTD_BASELINE (a directory, e.g. the
# release build of an earlier commit): run beside "wshostd", it measures a change before/after.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeats=5
seconds=3
smoke=
cases=()
only_clients=
scenario_list="echo burst connect idle"
idle_seconds=35   # the heartbeat is 30 s: every connection pings once in the window
idle_ping=30
deflate=
allocs=
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) smoke=1; repeats=1; seconds=1; idle_seconds=3; idle_ping=1; shift ;;
        --repeats) repeats=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --scenarios) scenario_list=$2; shift 2 ;;
        --case) cases+=("${2/:/ }"); shift 2 ;;
        --clients) only_clients=$2; shift 2 ;;
        --idle-seconds) idle_seconds=$2; shift 2 ;;
        --deflate) deflate=$2; shift 2 ;;
        --allocs) allocs=1; shift ;;
        *) sed -n '2,14p' "$0" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d /tmp/wsbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
case $deflate in
    '') ;;
    # what the server answers, and what wshostd offers ([websocket] compression)
    nct) deflate_response="permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        wshostd_compression=on ;;
    takeover) deflate_response="permessage-deflate"
        wshostd_compression="permessage-deflate; client_max_window_bits" ;;
    *) echo "--deflate: nct or takeover" >&2; exit 2 ;;
esac
cc -O2 -Wall -o "$work/server" "$root/bench/wsbench_server.c" -lssl -lcrypto -lz
cc -O2 -Wall -o "$work/zlib_alone" "$root/bench/zlib_alone.c" -lz
cc -O2 -Wall -o "$work/client" "$root/bench/wsbench_client.c" -lssl -lcrypto -lpthread
# The wss certificate: P-256, for 127.0.0.1 (wshostd verifies it against its CA file).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
if [ -n "$smoke" ]; then
    build=debug
    swift build --package-path "$root" --product wshostd >&2
    bin=$(swift build --package-path "$root" --show-bin-path)
else
    build=release
    swift build --package-path "$root" -c release --scratch-path "$root/.build-release" --product wshostd >&2
    bin="$root/.build-release/release"
fi
[ -x "$root/.venv/bin/python" ] || "$root/scripts/setup.sh" >&2
python="$root/.venv/bin/python"
port=9300

# wshostd_config PORT CONNS SCENARIO TLS: N objects whose records echo what they receive.
wshostd_config() {
    local scheme=ws
    [ "$4" = tls ] && scheme=wss
    printf '[log]\nlevel = "warning"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state-%s"\n' "$work" "$1"
    printf '[control]\nsocket = "%s/control-%s.sock"\n' "$work" "$1"
    printf '[websocket]\nidle_timeout = "1h"\nmax_message_size = "64MiB"\nmax_frame_size = "64MiB"\n'
    case $3 in
        connect) printf 'connect_retry_interval = "100ms"\n' ;;
        *) printf 'connect_retry_interval = "1h"\n' ;;
    esac
    [ -z "$deflate" ] || printf 'compression = "%s"\n' "$wshostd_compression"
    [ -z "${WSBENCH_PING_S:-}" ] || printf 'keepalive_interval = "%ss"\n' "$WSBENCH_PING_S"
    # The engine is measured, not the per-record send policy.
    printf '[limits]\nsends_per_second = 0\nconnect_attempts_per_second = 0\nconnect_attempts_per_destination = 0\n'
    printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$1"
    [ "$4" != tls ] || printf '[tls]\nca_file = "%s"\n' "$work/cert.pem"
    printf '[[users]]\nid = "host"\n[[sessions]]\nid = "bench"\nhost = "host"\n'
    for i in $(seq "$2"); do
        printf '[[sessions.objects]]\nid = "o%s"\nurl = "%s://127.0.0.1:%s/"\n' "$i" "$scheme" "$1"
        printf '[[sessions.objects.reactions]]\non = "received"\necho = true\n'
    done
}

# run_client NAME PORT CONNS SCENARIO TLS: the client under test, on core 1.
run_client() {
    local mode=()
    [ "$4" != connect ] || mode=(connect "$5")
    case $1 in
        raw-c) exec taskset -c 1 "$work/client" "$2" "$3" "${mode[@]}" ;;
        picows | websockets) WSBENCH_COMPRESSION=$deflate exec taskset -c 1 "$python" "$root/bench/echo_client.py" "$1" "$2" "$3" "${mode[@]}" ;;
        wshostd | wshostd-base)
            local dir=$bin
            if [ "$1" = wshostd-base ]; then dir=${WSHOSTD_BASELINE:?set WSHOSTD_BASELINE to a directory with a wshostd}; fi
            wshostd_config "$2" "$3" "$4" "$5" >"$work/wshostd-$2.toml"
            exec taskset -c 1 "$dir/wshostd" --config "$work/wshostd-$2.toml" 2>"$work/wshostd-$2.log"
            ;;
    esac
}

# Wake-ups = context switches of all the client's threads over the window,
# counted by perf (software event; it follows threads made meanwhile, which a
# sum over /proc/PID/task would miss when Dispatch retires a worker).
alloc_events=
if [ -n "$allocs" ]; then
    # the libc the clients load (on a multiarch host ldconfig lists others too)
    libc=$(ldd "$work/client" | awk '/libc\.so\.6/ {print $3}')
    [ -n "$libc" ] || { echo "--allocs: no libc.so.6 in ldd of the C client" >&2; exit 1; }
    # (not aligned_alloc: glibc's is memalign, and a probe there made perf count nothing at all)
    probes=$(perf probe -l 2>/dev/null || true)
    for fn in malloc calloc realloc posix_memalign; do
        [[ $probes == *"probe_libc:$fn "* ]] || perf probe -q -x "$libc" "$fn" >/dev/null ||
            { echo "--allocs: perf probe on $fn failed (root and uprobes needed)" >&2; exit 1; }
        alloc_events+=",probe_libc:$fn"
    done
fi
start_switches() { perf stat -x, -e "context-switches$alloc_events" -p "$1" -o "$work/perf.out" 2>/dev/null & }
# stop_switches PERF_PID: in the shell that started perf (a subshell cannot wait for it,
# and would read its output before it is written).
stop_switches() {
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# The context switches counted, then the allocations (0 without --allocs).
switches_counted() {
    awk -F, '/context-switches/ {s = ($1 ~ /^[0-9]+$/) ? $1 : 0}
             /probe_libc:/ {if ($1 ~ /^[0-9]+$/) a += $1}
             END {print s + 0, a + 0}' "$work/perf.out" 2>/dev/null || echo 0 0
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# one_run SCENARIO CLIENT CONNS SIZE K TLS: prints the server's JSON line plus
# the client's CPU seconds, wake-ups and RSS over the server's window.
one_run() {
    local scenario=$1 client_kind=$2 conns=$3 size=$4 k=$5 tls=$6 duration=$seconds warmup=1
    port=$((port + 1))
    if [ "$client_kind" = zlib ]; then # no server: zlib alone on the client's core
        [ "$scenario" = echo ] || return 0
        taskset -c 1 "$work/zlib_alone" "$size" "$duration" "$deflate" |
            jq -c --argjson conns "$conns" --arg deflate "$deflate" \
                '. + {conns: $conns, client: "zlib", client_cpu_s: .cpu_s, wakeups: 0, rss_kb: 0, tls: false, deflate: $deflate}'
        return
    fi
    [ "$scenario" != idle ] || { duration=$idle_seconds; warmup=3; }
    [ "$scenario" != burst ] || duration=60
    local env=()
    [ "$tls" != tls ] || env=(WSBENCH_CERT="$work/cert.pem" WSBENCH_KEY="$work/key.pem")
    [ -z "$deflate" ] || env+=(WSBENCH_DEFLATE="$deflate_response")
    env "${env[@]}" taskset -c 0 "$work/server" "$port" "$conns" "$size" "$duration" "$warmup" "$scenario" "$k" \
        >"$work/server.out" 2>"$work/server.err" &
    local server=$!
    for _ in $(seq 50); do grep -q LISTENING "$work/server.out" && break; sleep 0.05; done
    run_client "$client_kind" "$port" "$conns" "$scenario" "$tls" &
    local client=$!
    local t0=0 t1=0 wakeups=0 heap_allocs=0 rss=0 perf
    while kill -0 "$server" 2>/dev/null && ! grep -q 'WINDOW START' "$work/server.out"; do sleep 0.01; done
    t0=$(ticks "$client")
    rm -f "$work/perf.out"
    start_switches "$client"
    perf=$!
    while kill -0 "$server" 2>/dev/null && ! grep -q 'WINDOW END' "$work/server.out"; do sleep 0.01; done
    t1=$(ticks "$client")
    stop_switches "$perf"
    read -r wakeups heap_allocs <<<"$(switches_counted)"
    rss=$(rss_kb "$client")
    wait "$server" || true
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    local line
    line=$(grep '^{' "$work/server.out" || echo '{"error":"no result"}')
    echo "$line" | jq -c --arg client "$client_kind" --argjson ticks "$((t1 - t0))" \
        --argjson wakeups "${wakeups:-0}" --argjson rss "${rss:-0}" --arg tls "$tls" --arg deflate "$deflate" \
        --argjson allocs "${heap_allocs:-0}" --arg counted "$allocs" \
        '. + {client: $client, client_cpu_s: ($ticks / 100), wakeups: $wakeups, rss_kb: $rss, tls: ($tls == "tls")}
           + (if $deflate == "" then {} else {deflate: $deflate} end)
           + (if $counted == "" then {} else {allocs: $allocs} end)'
}

clients=(wshostd picows websockets raw-c)
[ -z "$deflate" ] || clients=(wshostd websockets zlib)
[ -z "$only_clients" ] || read -r -a clients <<<"$only_clients"
: >"$work/results.jsonl"
# run_scenario SCENARIO TLS "CONNS SIZE K"...: every case, every client in turn, REPEATS times.
run_scenario() {
    local scenario=$1 tls=$2
    shift 2
    for item in "$@"; do
        read -r conns size k <<<"$item"
        for _ in $(seq "$repeats"); do
            for client in "${clients[@]}"; do  # interleaved: every client once per repeat
                one_run "$scenario" "$client" "$conns" "$size" "${k:-1}" "$tls" >>"$work/results.jsonl"
                tail -1 "$work/results.jsonl" >&2
            done
        done
    done
}

for scenario in $scenario_list; do
    case $scenario in
        echo)
            if [ ${#cases[@]} -gt 0 ]; then
                list=("${cases[@]}")
            elif [ -n "$smoke" ]; then
                list=("1 16" "100 1024")
            elif [ -n "$deflate" ]; then
                list=("1 1024" "100 1024" "1 65536" "100 65536")
            else
                list=("1 16" "1 1024" "100 16" "100 1024" "1000 16" "1000 1024" "1 65536" "100 65536" "1 1048576")
            fi
            run_scenario echo none "${list[@]}"
            ;;
        burst)
            if [ -n "$smoke" ]; then list=("10 16 100"); else list=("100 16 1000" "1000 16 100"); fi
            WSBENCH_PING_S=1 run_scenario burst none "${list[@]}"
            ;;
        connect)
            n=100
            [ -z "$smoke" ] || n=10
            run_scenario connect none "$n 0"
            run_scenario connect tls "$n 0"
            ;;
        idle)
            if [ ${#cases[@]} -gt 0 ]; then
                list=("${cases[@]}")
            elif [ -n "$smoke" ]; then
                list=("100 0")
                [ -z "$deflate" ] || list=("100 1024")
            elif [ -n "$deflate" ]; then
                list=("1000 1024" "15000 1024")
            else
                list=("1000 0" "5000 0" "15000 0")
            fi
            WSBENCH_PING_S=$idle_ping run_scenario idle none "${list[@]}"
            ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
done

date=$(date -u +%Y-%m-%d)
name=$date
[ -z "$deflate" ] || name=$date-deflate-$deflate
[ -z "$smoke" ] || name=tmp/smoke${deflate:+-deflate-$deflate}  # a smoke's numbers mean nothing: kept out of git
mkdir -p "$root/bench/results/tmp"
out="$root/bench/results/$name.md"
jq -s -r --arg build "$build" --arg repeats "$repeats" --arg seconds "$seconds" --arg idle "$idle_seconds" --arg ping "$idle_ping" \
    --arg deflate "$deflate" -f "$root/bench/report.jq" "$work/results.jsonl" | tee "$out"
cp "$work/results.jsonl" "$root/bench/results/$name.jsonl"
echo "saved $out (raw lines: bench/results/$name.jsonl)" >&2
if [ -n "$smoke" ]; then
    # The smoke gates on nothing noisy: only that every run produced a result.
    failed=$(jq -s 'map(select(.error != null or .mode == null)) | length' "$work/results.jsonl")
    if [ "$failed" -gt 0 ]; then
        echo "smoke: $failed runs produced no result" >&2
        exit 1
    fi
    echo "smoke: every scenario ran" >&2
fi
