#!/bin/bash
# The proxy suite (issue #14, docs/operations.md): wshostd with its default
# [websocket] settings holds records through nginx (Debian's, WebSocket
# upgrade, its default 60 s proxy_read_timeout) to websocketd on loopback.
#   1. quiet connections (nobody sends anything) stay up for QUIET seconds
#      (default 180): no record reconnects;
#   2. nginx stops and starts again: every record is back within a few
#      seconds, not after connect_retry_interval (10 s).
#   integration/proxy/run.sh [--bin DIR] [--quiet SECONDS] [--records N]
# Prints "proxy: N passed, 0 failed" or fails. About QUIET + 30 seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=""
quiet=180
records=50
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --quiet) quiet=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$bin" ] || bin=$(swift build --package-path "$root" --show-bin-path)
command -v nginx >/dev/null || { echo "proxy: nginx is not installed (scripts/setup.sh)" >&2; exit 1; }
command -v websocketd >/dev/null || { echo "proxy: websocketd is not installed (scripts/setup.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/wshostd-proxy.XXXXXX)
cleanup() {
    [ ! -f "$work/nginx.pid" ] || nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    kill $(jobs -p) 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
fail() { echo "proxy: FAILED: $*" >&2; echo "--- daemon log (tail)" >&2; tail -30 "$work/daemon.log" >&2 || true; exit 1; }
pass() { passed=$((passed + 1)); echo "ok: $*"; }
free_port() { echo $((20000 + RANDOM % 20000)); }

# websocketd: one `cat` per connection (echoes lines; says nothing unasked).
p_backend=$(free_port)
websocketd --address=127.0.0.1 --port="$p_backend" --loglevel=error cat >"$work/websocketd.log" 2>&1 &
p_proxy=$(free_port)
mkdir -p "$work/logs"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:$p_proxy;
        location / {
            proxy_pass http://127.0.0.1:$p_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            # nginx's default, written out: a connection silent this long is cut.
            proxy_read_timeout 60s;
        }
    }
}
EOF
start_nginx() { nginx -p "$work" -c "$work/nginx.conf" || fail "nginx did not start: $(cat "$work/logs/error.log")"; }
start_nginx
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p_backend") 2>/dev/null && break; sleep 0.05; done

{
    printf '[log]\nlevel = "notice"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n' "$work"
    printf '[control]\nsocket = "%s/control.sock"\n' "$work"
    printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$p_proxy"
    printf '[[users]]\nid = "host"\n[[sessions]]\nid = "s"\nhost = "host"\n'
    for i in $(seq "$records"); do printf '[[sessions.objects]]\nid = "r%s"\nurl = "ws://127.0.0.1:%s/"\n' "$i" "$p_proxy"; done
} >"$work/wshostd.toml"  # no [websocket]: the defaults are under test
"$bin/wshostd" --config "$work/wshostd.toml" 2>"$work/daemon.log" &
daemon=$!
ctl() { "$bin/wshostctl" --socket "$work/control.sock" "$@"; }
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
# records_open: how many records are open; connected_at: "id connectedAt" per record.
records_open() { ctl --json objects list s | jq '[.objects[] | select(.record.isConnected)] | length'; }
connected_at() { ctl --json objects list s | jq -r '.objects[] | "\(.id) \(.record.connectedAt)"' | sort; }
for _ in $(seq 100); do [ "$(records_open)" = "$records" ] && break; sleep 0.1; done
[ "$(records_open)" = "$records" ] || fail "only $(records_open) of $records records opened through nginx"
pass "$records records open through nginx to websocketd"

# 1. Quiet: nobody sends a message. Keepalive pings (25 s) keep nginx's 60 s
# read timeout and wshostd's 60 s idle timeout from firing.
before=$(connected_at)
sleep "$quiet"
[ "$(records_open)" = "$records" ] || fail "after ${quiet} s quiet, $(records_open) of $records records are open"
# connectedAt is wall time derived from the monotonic clock at each query: equal within a second.
moved=$(join <(echo "$before") <(connected_at) | awk '{ d = $2 - $3; if (d < 0) d = -d; if (d > 1) n++ } END { print n + 0 }')
[ "$moved" = 0 ] || fail "$moved records reconnected while quiet"
connects=$(grep -c 'notice wshostd: connected' "$work/daemon.log" || true)
[ "$connects" = "$records" ] || fail "$connects connects for $records records while quiet"
reconnects=$(grep -c 'disconnected' "$work/daemon.log" || true)
[ "$reconnects" = 0 ] || fail "$reconnects disconnects while quiet"
pass "quiet for ${quiet} s with the default config: no record dropped or reconnected"

# 2. nginx stops, then starts again half a second later: every record is back
# within a few seconds (the first retry after a healthy connection comes after
# 0.5-1.5 s), not after connect_retry_interval.
nginx -p "$work" -c "$work/nginx.conf" -s stop
for _ in $(seq 100); do [ "$(records_open)" = 0 ] && break; sleep 0.1; done
[ "$(records_open)" = 0 ] || fail "$(records_open) records still open 10 s after nginx stopped"
sleep 0.5
start_nginx
started=$(date +%s%N)
for _ in $(seq 200); do [ "$(records_open)" = "$records" ] && break; sleep 0.05; done
back_ms=$((($(date +%s%N) - started) / 1000000))
[ "$(records_open)" = "$records" ] || fail "after nginx came back, $(records_open) of $records records reopened in 10 s"
[ "$back_ms" -le 5000 ] || fail "records took $back_ms ms to come back (bound 5 s)"
pass "nginx restarted: all $records records back in $back_ms ms (connect_retry_interval 10 s)"
kill -0 "$daemon" || fail "the daemon died"
echo "proxy: $passed passed, 0 failed"
