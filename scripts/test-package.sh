#!/bin/bash
# The Debian package under real systemd: builds it (scripts/package.sh, with
# lintian), builds a "newer" one from the same binaries with a higher version,
# and runs integration/package/check.sh in the systemd sandbox
# (../shared/tools/systemd-sandbox): install, upgrade with an edited config,
# remove, purge, install again.
#   scripts/test-package.sh [--deb FILE]    (FILE: an already built package)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sandbox=${SYSTEMD_SANDBOX:-$root/../shared/tools/systemd-sandbox/run-under-systemd.sh}
[ -f "$sandbox" ] || { echo "systemd sandbox not found at $sandbox" >&2; exit 1; }
deb=""
case "${1:-}" in
"") ;;
--deb)
    deb=${2:?--deb needs a file}
    [ -f "$deb" ] || { echo "test-package: no such package: $deb" >&2; exit 2; }
    ;;
*) echo "usage: $0 [--deb FILE]" >&2; exit 2 ;;
esac
payload=$(mktemp -d /tmp/wshostd-package.XXXXXX)
trap 'rm -rf "$payload"' EXIT
if [ -z "$deb" ]; then
    deb=$("$root/scripts/package.sh" --out "$payload/v1")
fi
v1=$(dpkg-deb -f "$deb" Version)
v2="$v1+pkgtest1"
"$root/scripts/package.sh" --no-build --no-lintian --version "$v2" --out "$payload/v2" >/dev/null
# check.sh finds the packages by their versions.
cp "$deb" "$payload/wshostd_${v1}_amd64.deb"
cp "$payload/v2/wshostd_${v2}_amd64.deb" "$payload/"
rm -rf "$payload/v1" "$payload/v2"
# apt reads the files as its unprivileged _apt user.
chmod 0755 "$payload"
chmod 0644 "$payload"/*.deb
bash "$sandbox" ${VERBOSE:+-v} --no-start --check-timeout 300 -e "V1=$v1" -e "V2=$v2" "$payload" \
    "$root/integration/package/check.sh"
