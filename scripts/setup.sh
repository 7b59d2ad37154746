#!/bin/bash
# Installs what building, running and testing wshostd need on Debian 12 with
# the Swift toolchain on PATH. Idempotent: only missing packages are installed.
# Run as root (or with sudo available).
set -euo pipefail
packages=(
    pkg-config libssl-dev libsystemd-dev   # system libraries the package links
    libsqlite3-dev                         # the state store (SQLite through GRDB)
    zlib1g-dev                             # permessage-deflate (the Zlib target)
    libpq-dev postgresql                   # the fleet: libpq (the Postgres target), a real server in its test
    systemd systemd-container              # real systemd + nspawn for the service tests
    util-linux procps jq binutils          # nsenter/unshare, ps, JSON in the journal checks, strings
    python3 python3-venv patch openssl     # test peers (venv), Autobahn fuzzing server, s_server
    gcc libc6-dev linux-perf               # the benchmarks' C peers; perf counts wake-ups (bench/)
    bc                                     # arithmetic in the restart benchmark (bench/restart.sh)
    nginx-light websocketd                 # the proxy suite: nginx in front of websocketd (integration/proxy)
    prometheus curl                        # the metrics suite: a real Prometheus scrapes wshostd (integration/prometheus)
    dpkg-dev lintian man-db                # the Debian package: dpkg-shlibdeps/-gencontrol, lintian, man -l (scripts/package.sh)
    zsh fish                               # syntax checks of the generated zsh and fish completions
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (install the Swift 6.3 toolchain)" >&2; exit 1; }

# Third-party WebSocket peers for the end-to-end tests, from PyPI.
root=$(cd "$(dirname "$0")/.." && pwd)
requirements=$root/Tests/peers/requirements.txt
if ! cmp -s "$requirements" "$root/.venv/requirements.txt" 2>/dev/null; then
    echo "setup: creating .venv with the test peers" >&2
    rm -rf "$root/.venv"
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$root/.venv/requirements.txt"
fi
