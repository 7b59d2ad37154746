#!/bin/bash
# The metrics suite (issue #14, docs/operations.md): a real Prometheus server
# (Debian's) scrapes wshostd's [metrics] listen endpoint on loopback, and the
# values are read back through Prometheus's own query API:
#   1. the target is up and its records by state match the daemon's own view;
#   2. messages sent with wshostctl show up as counted messages and bytes;
#   3. a rate and the histograms evaluate (what the sample alerts use);
#   4. the sample alert rules of config/prometheus load (promtool check rules).
#   integration/prometheus/run.sh [--bin DIR] [--records N]
# Prints "prometheus: N passed, 0 failed" or fails. About 20 seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=""
records=20
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$bin" ] || bin=$(swift build --package-path "$root" --show-bin-path)
command -v prometheus >/dev/null || { echo "prometheus: not installed (scripts/setup.sh)" >&2; exit 1; }
command -v websocketd >/dev/null || { echo "prometheus: websocketd is not installed (scripts/setup.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/wshostd-prom.XXXXXX)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
fail() {
    echo "prometheus: FAILED: $*" >&2
    echo "--- daemon log (tail)" >&2; tail -20 "$work/daemon.log" >&2 || true
    echo "--- prometheus log (tail)" >&2; tail -20 "$work/prometheus.log" >&2 || true
    exit 1
}
pass() { passed=$((passed + 1)); echo "ok: $*"; }
free_port() { echo $((20000 + RANDOM % 20000)); }
ctl() { "$bin/wshostctl" --socket "$work/control.sock" "$@"; }

# Records echo through websocketd (one `cat` per connection).
p_echo=$(free_port)
websocketd --address=127.0.0.1 --port="$p_echo" --loglevel=error cat >"$work/websocketd.log" 2>&1 &
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p_echo") 2>/dev/null && break; sleep 0.05; done

p_metrics=$(free_port)
{
    printf '[log]\nlevel = "notice"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n' "$work"
    printf '[control]\nsocket = "%s/control.sock"\n' "$work"
    printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$p_metrics"
    printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$p_echo"
    printf '[[users]]\nid = "host"\n[[sessions]]\nid = "s"\nhost = "host"\n'
    for i in $(seq "$records"); do printf '[[sessions.objects]]\nid = "r%s"\nurl = "ws://127.0.0.1:%s/"\n' "$i" "$p_echo"; done
    # One record that cannot connect (nothing listens on port 9): a failure by reason.
    printf '[[sessions.objects]]\nid = "down"\nurl = "ws://127.0.0.1:9/"\n'
} >"$work/wshostd.toml"
sed -i "s|allowed_url_hosts = \[\"127.0.0.1:$p_echo\"\]|allowed_url_hosts = [\"127.0.0.1:$p_echo\", \"127.0.0.1:9\"]|" "$work/wshostd.toml"
"$bin/wshostd" --config "$work/wshostd.toml" 2>"$work/daemon.log" &
for _ in $(seq 200); do [ "$(ctl --json status 2>/dev/null | jq -r '.recordStates.open // 0')" = "$records" ] && break; sleep 0.05; done
[ "$(ctl --json status | jq -r '.recordStates.open // 0')" = "$records" ] || fail "records did not open"

p_prom=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $root/config/prometheus/wshostd.rules.yml
scrape_configs:
  - job_name: wshostd
    static_configs:
      - targets: ["127.0.0.1:$p_metrics"]
EOF
command -v promtool >/dev/null && {
    promtool check rules "$root/config/prometheus/wshostd.rules.yml" >"$work/promtool.log" 2>&1 ||
        fail "promtool rejects config/prometheus/wshostd.rules.yml: $(cat "$work/promtool.log")"
    pass "the sample alert rules load (promtool check rules config/prometheus/wshostd.rules.yml)"
}
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$p_prom" >"$work/prometheus.log" 2>&1 &

# query EXPR: the first result's value, or "" (Prometheus's HTTP API, /api/v1/query).
query() {
    curl -sf --get "http://127.0.0.1:$p_prom/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // ""' 2>/dev/null || true
}
# await EXPR VALUE: until the query gives VALUE (20 s at most).
await() {
    local got=""
    for _ in $(seq 200); do
        got=$(query "$1")
        [ "$got" = "$2" ] && return 0
        sleep 0.1
    done
    fail "$1: expected $2, Prometheus says '${got}'"
}

await 'up{job="wshostd"}' 1
pass "Prometheus scrapes wshostd at 127.0.0.1:$p_metrics/metrics (up = 1)"
await 'wshostd_records{state="open"}' "$records"
await 'wshostd_records{state="waiting-to-retry"}' 1
await 'sum(wshostd_records)' "$((records + 1))"
pass "records by state through Prometheus: $records open, 1 waiting to retry"
await 'wshostd_connection_failures_total{reason="connect"} >= bool 1' 1
pass "failed attempts by reason: connect"

before=$(query 'wshostd_messages_received_total')
for i in $(seq 5); do ctl ws send s "r$i" --text "hello $i" >/dev/null || fail "ws send r$i"; done
await "wshostd_messages_received_total - $before" 5
await 'wshostd_sent_bytes_total' 35
pass "5 messages sent (35 bytes) and their 5 echoes counted, read back from Prometheus"

await 'rate(wshostd_connection_attempts_total[5s]) >= bool 0' 1
await 'wshostd_state_store_write_seconds_count >= bool 1' 1
await 'wshostd_loop_lag_seconds_count >= bool 1' 1
pass "a rate, the store-write and loop-lag histograms evaluate"

echo "prometheus: $passed passed, 0 failed"
