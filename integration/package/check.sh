#!/bin/bash
# Runs INSIDE the systemd sandbox (real PID 1 and journald): the life of the
# Debian package on a clean system, the way an operator meets it.
#   install → running, enabled, account, conffile, man pages, completion,
#             wshostctl for root and for a member of the wshostd group
#   edit the config, change the world → upgrade to a newer build: config kept,
#             service restarted, world intact
#   remove → stopped, config and state kept; purge → both gone
#   install again → a fresh daemon
# Environment: V1, V2 (the two versions; their .deb files are in /sandbox).
set -u
UNIT=wshostd.service
CONFIG=/etc/wshostd/wshostd.toml
passed=0
fail() {
    echo "FAIL: $*"
    systemctl status --no-pager -l "$UNIT" 2>&1 | head -30
    journalctl -b --no-pager -u "$UNIT" | tail -40
    exit 1
}
ok() { echo "ok: $*"; passed=$((passed + 1)); }
prop() { systemctl show -P "$1" "$UNIT"; }
wait_for() { # wait_for SECONDS CMD...
    local t=$1
    shift
    for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@" </dev/null >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; return 1; }; }
sessions() { wshostctl --json sessions list | jq -r '[.sessions[].id] | sort | join(",")'; }
running() { [ "$(systemctl is-active "$UNIT")" = active ] && wshostctl status >/dev/null 2>&1; }
deb1=/sandbox/wshostd_${V1}_amd64.deb
deb2=/sandbox/wshostd_${V2}_amd64.deb

# 0. A clean system. This machine's image forbids starting services from
# maintainer scripts (a container's /usr/sbin/policy-rc.d exiting 101); a real
# Debian system has no such file.
rm -f /usr/sbin/policy-rc.d
! dpkg -s wshostd >/dev/null 2>&1 || fail "wshostd is installed before the test"
[ ! -e /etc/wshostd ] && [ ! -e /var/lib/wshostd ] || fail "/etc/wshostd or /var/lib/wshostd exists before the test"
ok "clean system: no package, config or state"

# 1. Install.
apt_get install --no-install-recommends "$deb1" || fail "apt-get install $deb1"
[ "$(dpkg-query -W -f='${Status} ${Version}' wshostd)" = "install ok installed $V1" ] || fail "dpkg status after install"
wait_for 10 running || fail "not running after install"
[ "$(systemctl is-enabled "$UNIT")" = enabled ] || fail "service not enabled"
[ "$(systemctl is-enabled wshostd.socket)" = disabled ] || fail "socket unit is $(systemctl is-enabled wshostd.socket), not disabled"
[ "$(systemctl is-active wshostd.socket)" = inactive ] || fail "socket unit is active"
[ "$(ps -o user= -p "$(prop MainPID)")" = wshostd ] || fail "the daemon does not run as wshostd"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd wshostd) || fail "no wshostd account"
[ "$home" = /var/lib/wshostd ] && [ "$shell" = /usr/sbin/nologin ] || fail "account: home $home, shell $shell"
dpkg-query -W -f='${Conffiles}\n' wshostd | grep -q "^ $CONFIG " || fail "$CONFIG is not a conffile"
grep -q '^group = "wshostd"$' "$CONFIG" || fail "the packaged config does not let the wshostd group operate"
out=$(systemd-analyze verify /usr/lib/systemd/system/$UNIT 2>&1) && [ -z "$out" ] || fail "systemd-analyze verify: $out"
ok "installed $V1: enabled, running as wshostd (account from sysusers), socket unit installed but not enabled, $CONFIG a conffile, unit verifies"

[ "$(wshostctl --json status | jq -r .state)" = running ] || fail "wshostctl status as root"
useradd --no-create-home --groups wshostd op || fail "useradd op"
[ "$(runuser -u op -- wshostctl --json status | jq -r .state)" = running ] || fail "wshostctl status as a member of the wshostd group"
useradd --no-create-home stranger || fail "useradd stranger"
runuser -u stranger -- wshostctl status >/dev/null 2>&1
status=$?
[ "$status" = 69 ] || fail "a user outside the group got exit $status, not 69"
ok "wshostctl status: root and group member served; another user cannot reach the socket (69)"

for page in wshostd.8 wshostctl.1 wshostd.toml.5; do
    path=$(man -w "$page" 2>/dev/null) || fail "man -w $page"
    warnings=$(MANWIDTH=100 man --warnings -l "$path" 2>&1 >/dev/null)
    [ -z "$warnings" ] || fail "man $page: $warnings"
done
MANWIDTH=100 man 1 wshostctl 2>/dev/null | grep -q 'objects' || fail "man wshostctl lacks the objects command"
MANWIDTH=100 man 5 wshostd.toml 2>/dev/null | grep -q 'keepalive_interval' || fail "man wshostd.toml lacks keepalive_interval"
ok "man pages installed and render: wshostd(8), wshostctl(1), wshostd.toml(5)"

# 2. The operator's changes: the config (a declared world, debug logs) and the world itself.
cat >>"$CONFIG" <<'EOF'

[[users]]
id = "ann"

[[sessions]]
id = "lobby"
host = "ann"

[[sessions.objects]]
id = "door"
EOF
sed -i 's/^level = "info"$/level = "debug"/' "$CONFIG"
grep -q '^level = "debug"$' "$CONFIG" || fail "the packaged config has no 'level = \"info\"' line to edit"
wshostctl sessions start rt >/dev/null || fail "sessions start rt"
wshostctl objects spawn rt lamp >/dev/null || fail "objects spawn rt lamp"
systemctl reload "$UNIT" || fail "systemctl reload"
wait_for 10 sh -c '[ "$(wshostctl --json sessions list | jq -r "[.sessions[].id] | sort | join(\",\")")" = lobby,rt ]' ||
    fail "after reload: sessions $(sessions)"
ok "edited $CONFIG and reloaded; sessions: $(sessions)"

# Completion from the daemon, as bash runs it on Tab.
completion=/usr/share/bash-completion/completions/wshostctl
[ -f "$completion" ] && [ -f /usr/share/zsh/vendor-completions/_wshostctl ] &&
    [ -f /usr/share/fish/vendor_completions.d/wshostctl.fish ] || fail "a completion file is missing"
complete_line() { # complete_line WORD... (the last is the word completed)
    bash -c '
        source '"$completion"'
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
        _wshostctl wshostctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}" | sort | paste -sd,' completion "$@"
}
[ "$(complete_line wshostctl sessions show '')" = lobby,rt ] || fail "completing a session: $(complete_line wshostctl sessions show '')"
[ "$(complete_line wshostctl objects show rt '')" = lamp ] || fail "completing an object: $(complete_line wshostctl objects show rt '')"
[ "$(complete_line wshostctl users join lobby a)" = ann ] || fail "completing a user: $(complete_line wshostctl users join lobby a)"
[ "$(complete_line wshostctl obj)" = objects ] || fail "completing a command"
ok "bash completion: commands, and sessions, objects and users from the running daemon"

sum=$(md5sum <"$CONFIG")
pid1=$(prop MainPID)
invocation1=$(prop InvocationID)

# 3. Upgrade to a newer build.
apt_get install --no-install-recommends "$deb2" || fail "apt-get install $deb2"
[ "$(dpkg-query -W -f='${Version}' wshostd)" = "$V2" ] || fail "version after upgrade: $(dpkg-query -W -f='${Version}' wshostd)"
[ "$(md5sum <"$CONFIG")" = "$sum" ] || fail "the upgrade changed $CONFIG"
ls /etc/wshostd/*.dpkg-* >/dev/null 2>&1 && fail "the upgrade left $(ls /etc/wshostd/*.dpkg-*)"
wait_for 10 running || fail "not running after the upgrade"
[ "$(prop MainPID)" != "$pid1" ] && [ "$(prop InvocationID)" != "$invocation1" ] || fail "the service was not restarted"
[ "$(sessions)" = lobby,rt ] || fail "sessions after the upgrade: $(sessions)"
[ "$(wshostctl --json objects list rt | jq -r '[.objects[].id] | join(",")')" = lamp ] || fail "rt's objects after the upgrade"
[ "$(runuser -u op -- wshostctl --json status | jq -r .state)" = running ] || fail "group member after the upgrade"
ok "upgraded to $V2: edited config kept (no prompt, no .dpkg-dist), service restarted (new PID), world intact"

# 3b. Operators in a group of their own, set up as wshostd.toml(5) says.
groupadd ops && useradd --no-create-home --groups ops opal || fail "groupadd/useradd"
mkdir -p /etc/systemd/system/$UNIT.d
printf '[Service]\nSupplementaryGroups=ops\nSystemCallFilter=@chown\nRuntimeDirectoryMode=0751\n' \
    >/etc/systemd/system/$UNIT.d/operators.conf
sed -i 's/^group = "wshostd"$/group = "ops"/' "$CONFIG"
systemctl daemon-reload && systemctl restart "$UNIT" || fail "restart with the ops group"
wait_for 10 running || fail "not running with [control] group = \"ops\""
[ "$(stat -c %G /run/wshostd/control.sock)" = ops ] || fail "socket group $(stat -c %G /run/wshostd/control.sock)"
[ "$(runuser -u opal -- wshostctl --json status | jq -r .state)" = running ] || fail "a member of ops cannot operate"
runuser -u op -- wshostctl status >/dev/null 2>&1
status=$?
[ "$status" = 69 ] || fail "a member of wshostd only got exit $status with group = \"ops\""
rm -r /etc/systemd/system/$UNIT.d
sed -i 's/^group = "ops"$/group = "wshostd"/' "$CONFIG"
systemctl daemon-reload && systemctl restart "$UNIT" && wait_for 10 running || fail "back to the wshostd group"
ok "another operators' group through a drop-in (SupplementaryGroups, @chown, RuntimeDirectoryMode): its members operate, others not"

# 4. Remove: stopped; config and state kept.
apt_get remove wshostd || fail "apt-get remove"
[ "$(dpkg-query -W -f='${Status}' wshostd)" = "deinstall ok config-files" ] || fail "status after remove: $(dpkg-query -W -f='${Status}' wshostd)"
[ "$(systemctl is-active "$UNIT")" != active ] || fail "still active after remove"
! pgrep -x wshostd >/dev/null || fail "a wshostd process is left after remove"
[ ! -e /usr/bin/wshostd ] && [ ! -e /usr/lib/systemd/system/$UNIT ] || fail "binary or unit left after remove"
grep -q '^id = "lobby"$' "$CONFIG" || fail "the edited config is gone after remove"
[ -s /var/lib/wshostd/state.sqlite ] || fail "the state store is gone after remove"
getent passwd wshostd >/dev/null || fail "the account is gone after remove"
ok "removed: stopped, binaries and units gone, config and state kept"

# 5. Purge: config and state gone.
apt_get purge wshostd || fail "apt-get purge"
! dpkg -s wshostd >/dev/null 2>&1 || fail "dpkg still knows wshostd after purge"
[ ! -e /etc/wshostd ] || fail "/etc/wshostd left after purge: $(ls -la /etc/wshostd)"
[ ! -e /var/lib/wshostd ] || fail "/var/lib/wshostd left after purge"
[ ! -e /etc/systemd/system/multi-user.target.wants/$UNIT ] || fail "the enablement link is left after purge"
[ ! -e /var/lib/systemd/deb-systemd-helper-enabled/$UNIT.dsh-also ] || fail "deb-systemd-helper state left after purge"
ok "purged: config, state and unit state gone"

# 6. Installed again: a fresh daemon.
apt_get install --no-install-recommends "$deb1" || fail "reinstall $deb1"
wait_for 10 running || fail "not running after reinstall"
[ "$(sessions)" = "" ] || fail "sessions after purge and reinstall: $(sessions)"
ok "installed again after purge: running with the packaged config and an empty world"

echo "package: $passed passed, 0 failed"
