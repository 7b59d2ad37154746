#!/bin/bash
# Builds the Debian package dist/wshostd_VERSION_amd64.deb from this checkout.
#
#   scripts/package.sh [--out DIR] [--version VERSION] [--no-build] [--no-lintian]
#
# The binaries are a release build with the Swift runtime and Foundation linked
# statically (scratch path .build-deb), so the package depends only on Debian's
# libraries; dpkg-shlibdeps computes which. The version is the top entry of
# packaging/deb/changelog; --version prepends an entry to a copy of it (the
# package tests build a "newer" package this way). --no-build reuses the last
# build's staged binaries and man pages. lintian runs last and fails the build
# on any error or warning that packaging/deb/lintian-overrides does not justify.
#
# No debhelper: this is a binary package built from a Swift toolchain outside
# Debian's, so the steps dh would run are done here with dpkg-dev's tools, and
# the maintainer scripts (packaging/deb/post*, prerm) are debhelper's snippets.
set -euo pipefail
umask 022
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/dist
version=""
build=1
run_lintian=1
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-lintian) run_lintian=0; shift ;;
    *) echo "usage: $0 [--out DIR] [--version VERSION] [--no-build] [--no-lintian]" >&2; exit 2 ;;
    esac
done
cd "$root"
"$root/scripts/setup.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)

scratch=$root/.build-deb
stage=$scratch/stage   # binaries and man pages of the last build
work=$scratch/work     # the package tree, rebuilt every time
rm -rf "$work"
mkdir -p "$work/debian" "$stage"
cp packaging/deb/control packaging/deb/copyright "$work/debian/"
if [ -n "$version" ]; then
    {
        printf 'wshostd (%s) bookworm; urgency=medium\n\n  * Rebuilt as %s by scripts/package.sh --version.\n\n' "$version" "$version"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l packaging/deb/changelog -SMaintainer)" "$(date -R -u)"
        cat packaging/deb/changelog
    } >"$work/debian/changelog"
else
    cp packaging/deb/changelog "$work/debian/changelog"
fi
V=$(dpkg-parsechangelog -l "$work/debian/changelog" -SVersion)
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$work/debian/changelog" -STimestamp)
day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)
release=$(sed -n 's/.*public static let current = "\([0-9.]*\)".*/\1/p' Sources/Control/ControlProtocol.swift)
if [ "${V%-*}" != "$release" ]; then
    echo "package: packaging/deb/changelog says $V; the upstream part must be the release, $release" >&2
    exit 1
fi
# --- 1. Binaries: release, Swift runtime static, no RPATH, bind-now. --------
allowed_needed=" libc.so.6 libm.so.6 ld-linux-x86-64.so.2 libstdc++.so.6 libgcc_s.so.1 libssl.so.3 libcrypto.so.3 libsystemd.so.0 libsqlite3.so.0 libz.so.1 libpq.so.5 "
if [ "$build" = 1 ]; then
    swift build -c release --static-swift-stdlib --disable-local-rpath --scratch-path "$scratch" \
        -Xlinker -z -Xlinker now >&2
    rm -rf "$stage/bin" "$stage/debug"
    mkdir -p "$stage/bin" "$stage/debug"
    for tool in wshostd wshostctl; do
        binary=$scratch/release/$tool
        if readelf -d "$binary" | grep -qE 'RPATH|RUNPATH'; then
            echo "package: $tool has an RPATH/RUNPATH" >&2
            exit 1
        fi
        for needed in $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
            case "$allowed_needed" in
            *" $needed "*) ;;
            *) echo "package: $tool needs $needed, which the package must not ship or depend on" >&2; exit 1 ;;
            esac
        done
        # The symbols stay here (not shipped), linked by a debuglink for gdb.
        objcopy --only-keep-debug "$binary" "$stage/debug/$tool.debug"
        cp "$binary" "$stage/bin/$tool"
        strip --remove-section=.comment --remove-section=.note "$stage/bin/$tool"
        objcopy --add-gnu-debuglink="$stage/debug/$tool.debug" "$stage/bin/$tool"
    done
    "$stage/bin/wshostd" --check-config --config config/wshostd.toml >/dev/null
fi
# Every statically linked Swift package must be named in the copyright file
# (the build above resolved them).
[ -f Package.resolved ] || {
    echo "package: no Package.resolved: build once (swift build) before --no-build" >&2
    exit 1
}
for identity in $(jq -r '.pins[].identity' Package.resolved); do
    grep -qi "$identity" packaging/deb/copyright || {
        echo "package: $identity is linked in but not in packaging/deb/copyright" >&2
        exit 1
    }
done
[ -x "$stage/bin/wshostd" ] && [ -x "$stage/bin/wshostctl" ] || {
    echo "package: no staged binaries in $stage/bin (run without --no-build)" >&2
    exit 1
}

# --- 2. Man pages: wshostd(8) and wshostctl(1) generated from the argument ---
# parsers (swift-argument-parser's GenerateManual plugin, on the debug build:
# the plugin relinks what it builds, so it must not touch .build-deb), with a
# hand-written tail; wshostd.toml(5) is hand-written and kept complete by
# Tests/ConfigTests/ManPageTests.swift.
lint_man() {
    local page=$1 warnings
    warnings=$(env -i PATH="$PATH" LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=120 \
        man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
    if [ -n "$warnings" ]; then
        echo "package: $page: $warnings" >&2
        exit 1
    fi
}
if [ "$build" = 1 ]; then
    generated=$root/.build/plugins/GenerateManual/outputs
    rm -rf "$generated"
    swift package --scratch-path "$root/.build" generate-manual --configuration debug --date "$day" >&2
    rm -rf "$stage/man"
    mkdir -p "$stage/man"
    # Blank lines of a discussion become paragraphs; the generic EXIT STATUS
    # (and wshostctl's own, written in its discussion for --help) gives way
    # to the tail's; wshostd has no subcommands, so no "help" entry.
    postprocess='
        /^\.Sh "EXIT STATUS"$/ { drop_ex = 1; next }
        drop_ex && /^\.Ex / { drop_ex = 0; next }
        /^EXIT STATUS$/ { in_exit = 1; next }
        in_exit && /^\./ { in_exit = 0 }
        in_exit { next }
        no_subcommands && /^\.Ar subcommand$/ { next }
        no_subcommands && /^\.It Em help$/ { in_help = 1; depth = 0; next }
        in_help && /^\.Bl / { depth++; next }
        in_help && /^\.El$/ { if (--depth == 0) { in_help = 0 }; next }
        in_help { next }
        /^$/ { print ".Pp"; next }
        { print }'
    awk -v no_subcommands=1 "$postprocess" "$generated/wshostd/wshostd.1" |
        sed 's/^\.Dt WSHOSTD 1$/.Dt WSHOSTD 8/' >"$stage/man/wshostd.8"
    cat man/wshostd.8.tail >>"$stage/man/wshostd.8"
    awk -v no_subcommands=0 "$postprocess" "$generated/wshostctl/wshostctl.1" >"$stage/man/wshostctl.1"
    cat man/wshostctl.1.tail >>"$stage/man/wshostctl.1"
    grep -q '^\.Dt WSHOSTD 8$' "$stage/man/wshostd.8"
    if grep -qE '^\.Ar subcommand$|^\.It Em help$' "$stage/man/wshostd.8"; then
        echo "package: wshostd.8: the generated page changed shape; see the postprocess in $0" >&2
        exit 1
    fi
    for page in wshostd.8 wshostctl.1; do
        if grep -qE '^EXIT STATUS$|^\.Ex ' "$stage/man/$page" ||
            [ "$(grep -c '^\.Sh "\{0,1\}EXIT STATUS' "$stage/man/$page")" != 1 ]; then
            echo "package: $page: expected the tail's EXIT STATUS only; see the postprocess in $0" >&2
            exit 1
        fi
    done
fi
[ -f "$stage/man/wshostd.8" ] && [ -f "$stage/man/wshostctl.1" ] || {
    echo "package: no staged man pages in $stage/man (run without --no-build)" >&2
    exit 1
}
cp man/wshostd.toml.5 "$stage/man/wshostd.toml.5"
for page in "$stage/man/"*; do lint_man "$page"; done

# --- 3. The package tree. ----------------------------------------------------
pkg=$work/debian/wshostd
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" "$pkg/usr/lib/sysusers.d" \
    "$pkg/etc/wshostd" "$pkg/usr/share/man/man1" "$pkg/usr/share/man/man5" "$pkg/usr/share/man/man8" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d" "$pkg/usr/share/doc/wshostd/examples" \
    "$pkg/usr/share/lintian/overrides"
install -m 0755 "$stage/bin/wshostd" "$stage/bin/wshostctl" "$pkg/usr/bin/"

# Units: the binaries in /usr/bin, the documentation installed with them.
for unit in wshostd.service wshostd.socket; do
    sed -e 's|/usr/local/bin/|/usr/bin/|g' \
        -e 's|^Documentation=.*|Documentation=man:wshostd(8) man:wshostd.toml(5) file:/usr/share/doc/wshostd/README.md|' \
        "systemd/$unit" >"$pkg/usr/lib/systemd/system/$unit"
    chmod 0644 "$pkg/usr/lib/systemd/system/$unit"
done
if grep -q /usr/local "$pkg/usr/lib/systemd/system/"*; then
    echo "package: a unit still names /usr/local" >&2
    exit 1
fi
install -m 0644 systemd/wshostd.sysusers "$pkg/usr/lib/sysusers.d/wshostd.conf"

# The configuration: the example file, with the daemon's group as operators.
grep -q '^group = ""$' config/wshostd.toml || {
    echo "package: config/wshostd.toml has no 'group = \"\"' line to set" >&2
    exit 1
}
sed 's/^group = ""$/# The package sets the daemon'"'"'s own group; add operators to it (adduser NAME wshostd).\
group = "wshostd"/' config/wshostd.toml >"$pkg/etc/wshostd/wshostd.toml"
chmod 0644 "$pkg/etc/wshostd/wshostd.toml"
"$stage/bin/wshostd" --check-config --config "$pkg/etc/wshostd/wshostd.toml" >/dev/null

for page in wshostd.8:man8 wshostctl.1:man1 wshostd.toml.5:man5; do
    gzip -9n <"$stage/man/${page%%:*}" >"$pkg/usr/share/man/${page##*:}/${page%%:*}.gz"
done

# Completions, generated by the parser; each must at least parse in its shell.
# (bash-completion sources its files: no #! line.)
"$stage/bin/wshostctl" --generate-completion-script bash | sed '1{/^#!/d}' \
    >"$pkg/usr/share/bash-completion/completions/wshostctl"
"$stage/bin/wshostctl" --generate-completion-script zsh >"$pkg/usr/share/zsh/vendor-completions/_wshostctl"
"$stage/bin/wshostctl" --generate-completion-script fish >"$pkg/usr/share/fish/vendor_completions.d/wshostctl.fish"
bash -n "$pkg/usr/share/bash-completion/completions/wshostctl"
zsh -n "$pkg/usr/share/zsh/vendor-completions/_wshostctl"
fish --no-execute "$pkg/usr/share/fish/vendor_completions.d/wshostctl.fish"
chmod 0644 "$pkg/usr/share/bash-completion/completions/wshostctl" "$pkg/usr/share/zsh/vendor-completions/_wshostctl" \
    "$pkg/usr/share/fish/vendor_completions.d/wshostctl.fish"

doc=$pkg/usr/share/doc/wshostd
install -m 0644 packaging/deb/copyright "$doc/copyright"
gzip -9n <"$work/debian/changelog" >"$doc/changelog.Debian.gz"
install -m 0644 README.md "$doc/README.md"
for page in operations security state control-protocol architecture fleet; do
    install -m 0644 "docs/$page.md" "$doc/$page.md"
done
install -m 0644 config/demo-world.toml "$doc/examples/demo-world.toml"
install -m 0644 packaging/deb/lintian-overrides "$pkg/usr/share/lintian/overrides/wshostd"

# --- 4. Control files. -------------------------------------------------------
(
    cd "$work"
    # (absolute paths: with relative ones dpkg-shlibdeps does not find the package root)
    dpkg-shlibdeps -Tdebian/wshostd.substvars -e"$pkg/usr/bin/wshostd" -e"$pkg/usr/bin/wshostctl"
    dpkg-gencontrol -pwshostd -ldebian/changelog -cdebian/control -Tdebian/wshostd.substvars \
        -Pdebian/wshostd -fdebian/files
)
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$pkg/DEBIAN/"
echo /etc/wshostd/wshostd.toml >"$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/control"
(
    cd "$pkg"
    find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0r md5sum
) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

deb=$out/wshostd_${V}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
dpkg-deb --info "$deb" >&2

# --- 5. lintian. -------------------------------------------------------------
if [ "$run_lintian" = 1 ]; then
    lintian --fail-on error,warning --display-info --info "$deb" | tee "$out/lintian.txt" >&2
fi
echo "$deb"
