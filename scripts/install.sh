#!/bin/bash
# Install wshostd as a systemd service on this machine (as root).
#
#   scripts/install.sh [BINARY_DIR]
#
# BINARY_DIR holds the built wshostd and wshostctl (default: a release build
# with the Swift standard library linked statically, made here if missing).
# Installs the binaries to /usr/local/bin, the units (service, and the
# optional control-socket activation) to /etc/systemd/system,
# the account through systemd-sysusers, the example config to
# /etc/wshostd/wshostd.toml (an existing config is kept) and the README to
# /usr/local/share/doc/wshostd. Then: systemctl enable --now wshostd
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
    swift build --package-path "$root" -c release --static-swift-stdlib --scratch-path "$root/.build-release" >&2
    bin="$root/.build-release/release"
fi
install -D -m 0755 "$bin/wshostd" /usr/local/bin/wshostd
install -D -m 0755 "$bin/wshostctl" /usr/local/bin/wshostctl
install -D -m 0644 "$root/systemd/wshostd.service" /etc/systemd/system/wshostd.service
install -D -m 0644 "$root/systemd/wshostd.socket" /etc/systemd/system/wshostd.socket
install -D -m 0644 "$root/systemd/wshostd.sysusers" /usr/lib/sysusers.d/wshostd.conf
systemd-sysusers /usr/lib/sysusers.d/wshostd.conf
if [ ! -e /etc/wshostd/wshostd.toml ]; then
    install -D -m 0644 "$root/config/wshostd.toml" /etc/wshostd/wshostd.toml
fi
install -D -m 0644 "$root/README.md" /usr/local/share/doc/wshostd/README.md
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "installed; start with: systemctl enable --now wshostd" >&2
