#!/bin/bash
# The daemon's main job, with no network: start wshostd on the example config,
# reload it (a valid change, then a broken file that is refused), and stop it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
swift build --package-path "$root" --product wshostd >&2
bin=$(swift build --package-path "$root" --show-bin-path)/wshostd
work=$(mktemp -d /tmp/wshostd-demo.XXXXXX)
trap '[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
config=$work/wshostd.toml
cp "$root/config/wshostd.toml" "$config"
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
exit "$status"
