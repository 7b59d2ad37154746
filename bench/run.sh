#!/bin/bash
# The benchmark suite's entry command (bench/README.md). Builds the C peers and
# a release wshostd, then runs each scenario with every client in turns,
# interleaved, REPEATS times; the server is pinned to core 0, the client to
# core 1. Prints one table with ratios from this run and saves it to
# bench/results/DATE.md.
#   bench/run.sh [--smoke] [--repeats N] [--seconds S] [--case CONNS:SIZE]... [--clients "a b"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeats=5
seconds=3
smoke=
cases=()
only_clients=
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) smoke=1; repeats=1; seconds=1; shift ;;
        --repeats) repeats=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --case) cases+=("${2/:/ }"); shift 2 ;;
        --clients) only_clients=$2; shift 2 ;;
        *) echo "usage: $0 [--smoke] [--repeats N] [--seconds S] [--case CONNS:SIZE]... [--clients \"a b\"]" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d /tmp/wsbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/server" "$root/bench/wsbench_server.c" -lcrypto
cc -O2 -Wall -o "$work/client" "$root/bench/wsbench_client.c"
if [ -n "$smoke" ]; then
    build=debug
    swift build --package-path "$root" --product wshostd >&2
    bin=$(swift build --package-path "$root" --show-bin-path)
else
    build=release
    swift build --package-path "$root" -c release --scratch-path "$root/.build-release" --product wshostd >&2
    bin="$root/.build-release/release"
fi
python="$root/.venv/bin/python"
port=9300

# run_client NAME PORT CONNS: an echo client of the given kind, in the background on core 1.
run_client() {
    case $1 in
        raw-c) taskset -c 1 "$work/client" "$2" "$3" ;;
        picows | websockets) taskset -c 1 "$python" "$root/bench/echo_client.py" "$1" "$2" "$3" ;;
        wshostd)
            {
                printf '[log]\nlevel = "warning"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state-%s"\n' "$work" "$2"
                printf '[control]\nsocket = "%s/control-%s.sock"\n' "$work" "$2"
                printf '[websocket]\nidle_timeout = "1h"\nconnect_retry_interval = "1h"\nmax_message_size = "64MiB"\nmax_frame_size = "64MiB"\n'
                printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$2"
                printf '[[users]]\nid = "host"\n[[sessions]]\nid = "bench"\nhost = "host"\n'
                for i in $(seq "$3"); do
                    printf '[[sessions.objects]]\nid = "o%s"\nurl = "ws://127.0.0.1:%s/"\n' "$i" "$2"
                    printf '[[sessions.objects.reactions]]\non = "received"\necho = true\n'
                done
            } >"$work/wshostd-$2.toml"
            taskset -c 1 "$bin/wshostd" --config "$work/wshostd-$2.toml" 2>"$work/wshostd-$2.log"
            ;;
    esac
}

# one_run CLIENT CONNS SIZE: prints the server's JSON line plus the client's CPU seconds.
one_run() {
    port=$((port + 1))
    taskset -c 0 "$work/server" "$port" "$2" "$3" "$seconds" 1 >"$work/server.out" 2>"$work/server.err" &
    local server=$!
    for _ in $(seq 50); do grep -q LISTENING "$work/server.out" && break; sleep 0.05; done
    run_client "$1" "$port" "$2" &
    local client=$!
    # The client's CPU time over the server's measuring window (from /proc).
    ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
    local cpid="" t0=0 t1=0
    while kill -0 "$server" 2>/dev/null && ! grep -q 'WINDOW START' "$work/server.out"; do sleep 0.01; done
    cpid=$(pgrep -P "$client" | head -1 || true)
    [ -n "$cpid" ] || cpid=$client
    t0=$(ticks "$cpid")
    while kill -0 "$server" 2>/dev/null && ! grep -q 'WINDOW END' "$work/server.out"; do sleep 0.01; done
    t1=$(ticks "$cpid")
    wait "$server" || true
    kill "$client" 2>/dev/null || true
    pkill -P "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    local line
    line=$(grep '^{' "$work/server.out" || echo '{}')
    echo "$line" | jq -c --arg client "$1" --argjson ticks "$((t1 - t0))" '. + {client: $client, client_cpu_s: ($ticks / 100)}'
}

clients=(wshostd picows websockets raw-c)
[ -z "$only_clients" ] || read -r -a clients <<<"$only_clients"
if [ ${#cases[@]} -gt 0 ]; then
    scenarios=("${cases[@]}")
elif [ -n "$smoke" ]; then
    scenarios=("1 16" "100 1024")
else
    scenarios=("1 16" "1 1024" "100 16" "100 1024" "1000 16" "1000 1024" "1 65536" "100 65536" "1 1048576")
fi
: >"$work/results.jsonl"
for scenario in "${scenarios[@]}"; do
    read -r conns size <<<"$scenario"
    for r in $(seq "$repeats"); do
        for client in "${clients[@]}"; do  # interleaved: every client once per repeat
            one_run "$client" "$conns" "$size" >>"$work/results.jsonl"  # not in a pipe: $port must advance
            tail -1 "$work/results.jsonl" >&2
        done
    done
done

date=$(date -u +%Y-%m-%d)
mkdir -p "$root/bench/results"
out="$root/bench/results/$date.md"
{
    echo "# Echo round trips, $date ($build build, $repeats repeats × ${seconds}s, server on core 0, client on core 1)"
    echo
    echo "Median of the repeats. msg/s and p50/p99 round-trip latency measured by the server; client CPU per message from /proc."
    echo
    echo "| conns | size | client | msg/s | p50 µs | p99 µs | client CPU µs/msg | ÷ picows | ÷ raw C |"
    echo "|---|---|---|---|---|---|---|---|---|"
    jq -s -r '
      def median: sort | .[(length / 2 | floor)];
      group_by([.conns, .size]) | .[] |
      (map(select(.messages_per_s != null)) | group_by(.client) | map({client: .[0].client,
          conns: .[0].conns, size: .[0].size,
          mps: (map(.messages_per_s) | median), p50: (map(.p50_us) | median), p99: (map(.p99_us) | median),
          cpu: (map(if .messages > 0 then .client_cpu_s * 1e6 / .messages else 0 end) | median)})) as $rows |
      ($rows | map({(.client): .mps}) | add) as $by |
      $rows[] | "| \(.conns) | \(.size) | \(.client) | \(.mps) | \(.p50) | \(.p99) | \(.cpu * 10 | round / 10) | " +
        (if $by.picows then "\((.mps / $by.picows * 100 | round) / 100)" else "-" end) + " | " +
        (if $by["raw-c"] then "\((.mps / $by["raw-c"] * 100 | round) / 100)" else "-" end) + " |"
    ' "$work/results.jsonl"
} | tee "$out"
echo "saved $out" >&2
