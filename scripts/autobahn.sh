#!/bin/bash
# Runs the Autobahn|Testsuite fuzzing server (../shared/tools/autobahn) against
# wshostd's WebSocket client (wsprobe autobahn) on loopback and prints the
# summary. Exit 1 if any case is FAILED or NON-STRICT.
#   scripts/autobahn.sh [--cases "12.*,13.*"] [--exclude "9.*"] [--compression on|OFFER] [--outdir DIR]
#                       [--bin DIR] [--via-world | --via-daemon]
# --cases: the case patterns (default: all of 1-10); --compression: the
# client's permessage-deflate setting ([websocket] compression), for 12.*/13.*.
# --via-world runs each case through the world engine in-process: an object
# with an echo reaction per case (wsprobe autobahn --via-world).
# --via-daemon runs each case through a running wshostd, driven with wshostctl:
# spawn an object, give it an echo reaction, Connect it to runCase, wait for
# its disconnect, remove it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${AUTOBAHN_TOOLS:-$root/../shared/tools/autobahn}
venv=${AUTOBAHN_VENV:-/tmp/autobahn-venv}
outdir=/tmp/wshostd-autobahn
bin=
exclude=
cases=
compression=off
via=()
daemon=
port=${AUTOBAHN_PORT:-9001}
while [ $# -gt 0 ]; do
    case $1 in
        --exclude) exclude=$2; shift 2 ;;
        --cases) cases=$2; shift 2 ;;
        --compression) compression=$2; shift 2 ;;
        --outdir) outdir=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --via-world) via=(--via-world); shift ;;
        --via-daemon) daemon=1; shift ;;
        *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    swift build --package-path "$root" --product wsprobe >&2
    swift build --package-path "$root" --product wshostd >&2
    swift build --package-path "$root" --product wshostctl >&2
    bin=$(swift build --package-path "$root" --show-bin-path)
fi
[ -x "$venv/bin/wstest" ] || bash "$tools/setup.sh" "$venv" >&2
rm -rf "$outdir"
args=(--venv "$venv" --outdir "$outdir" --port "$port")
[ -z "$exclude" ] || args+=(--exclude "$exclude")
[ -z "$cases" ] || args+=(--cases "$cases")
bash "$tools/fuzzingserver.sh" "${args[@]}" >"$outdir.server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
if [ -z "$daemon" ]; then
    timeout 1800 "$bin/wsprobe" autobahn --base "ws://127.0.0.1:$port" --agent wshostd --compression "$compression" \
        "${via[@]}" >&2
else
    work=$(mktemp -d /tmp/wshostd-autobahn-daemon.XXXXXX)
    cat >"$work/wshostd.toml" <<EOF
[log]
level = "notice"
target = "stderr"
[daemon]
state_directory = "$work/state"
[control]
socket = "$work/control.sock"
[websocket]
# A case runs once: no reconnect after the server closes.
connect_retry_interval = "1h"
compression = "$compression"
[security]
allowed_url_hosts = ["127.0.0.1:$port"]
[[users]]
id = "host"
kind = "headless"
[[sessions]]
id = "autobahn"
host = "host"
EOF
    "$bin/wshostd" --config "$work/wshostd.toml" 2>"$work/daemon.log" &
    daemon_pid=$!
    trap 'kill "$server" 2>/dev/null || true; kill -9 "$daemon_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
    ctl() { "$bin/wshostctl" --socket "$work/control.sock" "$@"; }
    for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
    count=$("$bin/wsprobe" echo "ws://127.0.0.1:$port/getCaseCount" --once | sed -n 's/^text //p')
    echo "autobahn: $count cases through wshostd (pid $daemon_pid)" >&2
    for n in $(seq "$count"); do
        ctl objects spawn autobahn "case$n" >/dev/null
        ctl objects react autobahn "case$n" --on received --echo >/dev/null
        ctl ws connect autobahn "case$n" --url "ws://127.0.0.1:$port/runCase?case=$n&agent=wshostd-daemon" >/dev/null
        # Done when the record left connecting/open (the server closed it).
        for _ in $(seq 1200); do
            state=$(ctl --json ws show autobahn "case$n" | jq -r .record.state)
            case $state in awaiting-consent | connecting | open) sleep 0.05 ;; *) break ;; esac
        done
        ctl objects remove autobahn "case$n" >/dev/null
    done
    "$bin/wsprobe" echo "ws://127.0.0.1:$port/updateReports?agent=wshostd-daemon" --once >/dev/null
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || { echo "autobahn: wshostd exited with $?" >&2; exit 1; }
    grep -E " (warning|error|critical) " "$work/daemon.log" | grep -v "connection attempt failed" | head -5 >&2 || true
fi
summary=$("$venv/bin/python" "$tools/summarize.py" "$outdir")
echo "$summary"
if echo "$summary" | head -1 | grep -qE 'FAILED|NON-STRICT|UNIMPLEMENTED|WRONG CODE|UNCLEAN'; then
    echo "autobahn: not all cases OK or INFORMATIONAL" >&2
    exit 1
fi
