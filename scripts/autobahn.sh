#!/bin/bash
# Runs the Autobahn|Testsuite fuzzing server (../shared/tools/autobahn) against
# wshostd's WebSocket client (wsprobe autobahn) on loopback and prints the
# summary. Exit 1 if any case is FAILED or NON-STRICT.
#   scripts/autobahn.sh [--exclude "9.*"] [--outdir DIR] [--bin DIR] [--via-world]
# --via-world runs each case through the world engine: an object with an echo
# reaction per case (wsprobe autobahn --via-world).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${AUTOBAHN_TOOLS:-$root/../shared/tools/autobahn}
venv=${AUTOBAHN_VENV:-/tmp/autobahn-venv}
outdir=/tmp/wshostd-autobahn
bin=
exclude=
via=()
port=${AUTOBAHN_PORT:-9001}
while [ $# -gt 0 ]; do
    case $1 in
        --exclude) exclude=$2; shift 2 ;;
        --outdir) outdir=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --via-world) via=(--via-world); shift ;;
        *) echo "usage: $0 [--exclude PATTERNS] [--outdir DIR] [--bin DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    swift build --package-path "$root" --product wsprobe >&2
    bin=$(swift build --package-path "$root" --show-bin-path)
fi
[ -x "$venv/bin/wstest" ] || bash "$tools/setup.sh" "$venv" >&2
rm -rf "$outdir"
args=(--venv "$venv" --outdir "$outdir" --port "$port")
[ -z "$exclude" ] || args+=(--exclude "$exclude")
bash "$tools/fuzzingserver.sh" "${args[@]}" >"$outdir.server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
timeout 900 "$bin/wsprobe" autobahn --base "ws://127.0.0.1:$port" --agent wshostd "${via[@]}" >&2
summary=$("$venv/bin/python" "$tools/summarize.py" "$outdir")
echo "$summary"
if echo "$summary" | head -1 | grep -qE 'FAILED|NON-STRICT|UNIMPLEMENTED|WRONG CODE|UNCLEAN'; then
    echo "autobahn: not all cases OK or INFORMATIONAL" >&2
    exit 1
fi
