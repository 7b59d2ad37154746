#!/bin/bash
# Assertions run INSIDE the sandbox container, where PID 1 is the real systemd
# and journald is real. Exit 0 = every check passed.
set -u
UNIT=wshostd.service
CONFIG=/etc/wshostd/wshostd.toml
passed=0
fail() {
    echo "FAIL: $*"
    systemctl status --no-pager -l "$UNIT"
    journalctl -b --no-pager -u "$UNIT" | tail -40
    exit 1
}
ok() { echo "ok: $*"; passed=$((passed + 1)); }
prop() { systemctl show -P "$1" "$UNIT"; }
wait_for() {  # wait_for SECONDS CMD...
    local t=$1; shift
    for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
journal_json() { journalctl -b --no-pager -o json -u "$UNIT" "$@"; }
# one JSON field of the first entry matching MESSAGE=$1 (exact), for pid $2
field() {
    journal_json MESSAGE="$1" _PID="$2" | head -1 | jq -r ".$3 // empty"
}

# 0. the unit file passes systemd-analyze verify (with the installed binary)
out=$(systemd-analyze verify /etc/systemd/system/$UNIT 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed: $out"
ok "systemd-analyze verify $UNIT: clean"

# 1. Type=notify: started means READY=1 arrived; STATUS is set
[ "$(prop ActiveState)/$(prop SubState)" = active/running ] || fail "not active/running"
[ "$(prop Type)" = notify ] || fail "Type=$(prop Type)"
status=$(prop StatusText)
case $status in "running; 0 sessions, 0 records, 0 open; config generation 1 from $CONFIG") ;; *) fail "StatusText='$status'" ;; esac
pid0=$(prop MainPID)
[ "$(ps -o user= -p "$pid0")" = wshostd ] || fail "runs as $(ps -o user= -p "$pid0"), not wshostd"
ok "active/running after READY=1, user wshostd, StatusText='$status'"

# 2. journald carries structured fields from sd_journal_sendv
[ "$(field started "$pid0" SYSLOG_IDENTIFIER)" = wshostd ] || fail "no SYSLOG_IDENTIFIER=wshostd on 'started'"
[ "$(field started "$pid0" PRIORITY)" = 5 ] || fail "PRIORITY of 'started' is not 5 (notice)"
[ "$(field started "$pid0" LOG_BACKEND)" = journald ] || fail "LOG_BACKEND is not journald"
[ "$(field started "$pid0" CONFIG_FILE)" = "$CONFIG" ] || fail "CONFIG_FILE field missing"
[ -n "$(field started "$pid0" CODE_FILE)" ] && [ -n "$(field started "$pid0" CODE_LINE)" ] &&
    [ -n "$(field started "$pid0" CODE_FUNC)" ] || fail "CODE_FILE/LINE/FUNC missing"
ok "journal entry: $(journal_json MESSAGE=started _PID="$pid0" | head -1 | jq -c '{MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,CODE_FILE,CODE_LINE,CODE_FUNC,CONFIG_FILE,LOG_BACKEND,VERSION}')"

# 3. systemctl reload with a valid change: applied, generation 2, same process
sed -i 's/^level = "info"/level = "debug"/' "$CONFIG"
systemctl reload "$UNIT" || fail "reload failed"
wait_for 5 sh -c "systemctl show -P StatusText $UNIT | grep -q 'generation 2'" || fail "no generation 2 after reload: $(prop StatusText)"
[ "$(field 'configuration reloaded' "$pid0" CONFIG_GENERATION)" = 2 ] || fail "no 'configuration reloaded' entry"
[ "$(prop MainPID)" = "$pid0" ] || fail "reload restarted the process"
ok "systemctl reload: applied in place (pid $pid0), StatusText='$(prop StatusText)'"

# 4. systemctl reload with a broken config: refused, error in the journal, still running
cp "$CONFIG" /tmp/good.toml
printf '[websocket]\nidle_timeout = 60\n' >"$CONFIG"
systemctl reload "$UNIT" || fail "reload command failed"
wait_for 5 sh -c "systemctl show -P StatusText $UNIT | grep -q 'last reload failed'" || fail "StatusText does not report the failed reload"
msg="configuration reload refused, keeping the running configuration: $CONFIG:2: websocket.idle_timeout: expected a duration such as \"60s\", \"250ms\" or \"1m30s\", found integer 60"
[ "$(field "$msg" "$pid0" PRIORITY)" = 3 ] || fail "no error entry '$msg'"
[ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" = "$pid0" ] || fail "daemon did not survive a broken reload"
ok "broken reload refused, still pid $pid0; journal: $msg"
cp /tmp/good.toml "$CONFIG"
systemctl reload "$UNIT"

# 5. kill -9 of the main PID: Restart=on-failure brings it back
kill -9 "$pid0"
wait_for 15 sh -c "[ \"\$(systemctl show -P NRestarts $UNIT)\" = 1 ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
    fail "no restart after kill -9 (NRestarts=$(prop NRestarts))"
pid1=$(prop MainPID)
[ "$pid1" != "$pid0" ] || fail "MainPID unchanged"
ok "kill -9 $pid0: restarted as $pid1, NRestarts=1"

# 6. watchdog: pings keep a live loop alive; a frozen process is killed and restarted
mkdir -p /run/systemd/system/$UNIT.d
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n' >/run/systemd/system/$UNIT.d/50-watchdog-test.conf
systemctl daemon-reload
systemctl restart "$UNIT" || fail "restart with WatchdogSec=2s failed"
pid2=$(prop MainPID)
[ "$(prop WatchdogUSec)" = 2s ] || fail "WatchdogUSec=$(prop WatchdogUSec)"
sleep 5
[ "$(prop MainPID)" = "$pid2" ] && [ "$(prop ActiveState)" = active ] || fail "watchdog fired although the loop pings"
ok "alive after 5 s with WatchdogSec=2s (pid $pid2 pings from its loop)"
restarts=$(prop NRestarts)
kill -STOP "$pid2"
wait_for 20 sh -c "[ \"\$(systemctl show -P NRestarts $UNIT)\" -gt $restarts ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
    fail "watchdog did not restart the frozen daemon (NRestarts=$(prop NRestarts))"
journalctl -b --no-pager -u "$UNIT" | grep -q 'Watchdog timeout' || fail "no 'Watchdog timeout' in the journal"
ok "frozen pid $pid2: watchdog timeout, restarted as $(prop MainPID)"
rm -rf /run/systemd/system/$UNIT.d
systemctl daemon-reload

# 7a. the control socket: wshostctl reaches the daemon at the default path
ctl_status=$(wshostctl --json status) || fail "wshostctl status failed: $ctl_status"
[ "$(echo "$ctl_status" | jq -r .state)" = running ] || fail "wshostctl status: $ctl_status"
sock=/run/wshostd/control.sock
[ "$(stat -c '%a %U' $sock)" = "660 wshostd" ] || fail "control socket is $(stat -c '%a %U' $sock)"
wshostctl users add ops-check >/dev/null || fail "wshostctl users add failed"
wshostctl --json users list | jq -e '.users[] | select(.id == "ops-check")' >/dev/null || fail "added user not listed"
if out=$(setpriv --reuid=65534 --regid=65534 --clear-groups -- wshostctl status 2>&1); then fail "uid 65534 could operate: $out"; fi
ok "wshostctl over $sock (mode 660, owner wshostd): status, users add/list; uid 65534 refused: $out"

# 7. systemctl stop: SIGTERM, STOPPING=1, clean exit 0 well within TimeoutStopSec
pid3=$(prop MainPID)
t0=$(date +%s%N)
systemctl stop "$UNIT" || fail "stop failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(prop ActiveState)" = inactive ] || fail "not inactive after stop"
[ "$(prop Result)" = success ] || fail "Result=$(prop Result)"
[ "$(prop ExecMainStatus)" = 0 ] || fail "ExecMainStatus=$(prop ExecMainStatus)"
[ -n "$(field stopping "$pid3" SIGNAL)" ] || fail "no 'stopping' entry from $pid3"
[ "$ms" -lt 5000 ] || fail "stop took ${ms} ms"
ok "systemctl stop: exit 0, Result=success in ${ms} ms"

# 8. an invalid config at start: ExecStartPre refuses with the message, no restart loop
printf '[log]\nlevel = "loud"\n' >"$CONFIG"
systemctl start "$UNIT" 2>/dev/null && fail "started with an invalid config"
journalctl -b --no-pager -u "$UNIT" | grep -q "$CONFIG:2: log.level: expected one of" || fail "config error not in the journal"
ok "invalid config at start: refused, error in the journal"
cp /tmp/good.toml "$CONFIG"

# 9. socket activation: wshostd.socket holds the socket; a request starts the daemon
systemctl stop "$UNIT"
systemctl start wshostd.socket || fail "wshostd.socket did not start"
[ "$(prop ActiveState)" = inactive ] || fail "service active before any request"
out=$(wshostctl --json status) || fail "activation request failed: $out"
[ "$(echo "$out" | jq -r .state)" = running ] || fail "activated status: $out"
pid4=$(prop MainPID)
[ -n "$(journal_json MESSAGE='control socket passed by systemd' _PID="$pid4" | head -1)" ] || fail "daemon did not adopt the passed socket"
systemctl restart "$UNIT" || fail "restart under socket activation failed"
wshostctl status >/dev/null || fail "wshostctl failed after a restart"
[ -S /run/wshostd/control.sock ] || fail "socket gone after restart"
ok "socket activation: a wshostctl request started pid $pid4 on the passed socket; restart keeps the socket"
systemctl stop "$UNIT" wshostd.socket

echo "hardening: $(systemd-analyze security --no-pager $UNIT 2>/dev/null | tail -1)"
echo "$passed passed, 0 failed"
