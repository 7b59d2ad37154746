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

# 10. durable state with 200 records against a loopback peer inside the container
# (the python-websockets test peer, from the project's venv through the overlay)
[ -x "${PEER_PYTHON:-}" ] || fail "PEER_PYTHON (the test peers' python) not set or not executable"
peer() {  # peer NAME: an echo-log peer in the background; its port in $port
    "$PEER_PYTHON" /sandbox/ws_peer.py echo-log >"/tmp/$1.out" 2>&1 &
    for _ in $(seq 100); do grep -q '^PORT ' "/tmp/$1.out" 2>/dev/null && break; sleep 0.1; done
    port=$(sed -n 's/^PORT //p' "/tmp/$1.out")
    [ -n "$port" ] || fail "peer $1 did not start: $(cat /tmp/$1.out)"
}
peer main; P=$port
peer asked; P2=$port
write_config() {  # write_config EXTRA: 100 declared records in "lobby", plus EXTRA
    {
        printf '[log]\nlevel = "info"\n[daemon]\nstop_timeout = "5s"\n[websocket]\nconnect_retry_interval = "1s"\n'
        # The peers are on loopback, denied by default unless allowed.
        printf '[security]\nallowed_networks = ["127.0.0.0/8"]\n'
        printf '[[users]]\nid = "host"\nallowed_hosts = ["127.0.0.1:%s"]\n' "$P"
        printf '[[users]]\nid = "ann"\nkind = "interactive"\n'
        printf '[[sessions]]\nid = "lobby"\nhost = "host"\npresent = ["host", "ann"]\n'
        for i in $(seq 100); do printf '[[sessions.objects]]\nid = "d%s"\nurl = "ws://127.0.0.1:%s/d%s"\n' "$i" "$P" "$i"; done
        printf '[[sessions.objects]]\nid = "badge"\nworn_by = "ann"\nurl = "ws://127.0.0.1:%s/badge"\naccess_reason = "the badge"\n' "$P2"
        printf '%s\n' "${1:-}"
    } >"$CONFIG"
}
open_count() { wshostctl --json status | jq -r .open; }
write_config
rm -rf /var/lib/wshostd/state.sqlite*
systemctl start "$UNIT" || fail "start with 100 declared records failed"
wshostctl sessions start rt --host host >/dev/null || fail "sessions start"
for i in $(seq 100); do
    wshostctl objects spawn rt "r$i" >/dev/null && wshostctl ws connect rt "r$i" --url "ws://127.0.0.1:$P/r$i" >/dev/null ||
        fail "run-time object r$i"
done
token=$(wshostctl --json users token ann | jq -r .token)
prompt=""
for _ in $(seq 50); do
    prompt=$(wshostctl --json consent list ann | jq -r '.pending[0].prompt // empty')
    [ -n "$prompt" ] && break; sleep 0.1
done
[ -n "$prompt" ] || fail "ann was not prompted for 127.0.0.1:$P2"
wshostctl consent answer ann "$prompt" allow --token "$token" >/dev/null || fail "consent answer"
wait_for 30 sh -c '[ "$(wshostctl --json status | jq -r .open)" = 201 ]' || fail "open: $(open_count) of 201"
world() {  # the world without what moves on its own
    for s in lobby rt; do
        wshostctl --json objects list $s | jq -S '[.objects[] | .record |= (if . then del(.state, .isConnected, .retryAt, .lastError, .connectedAt, .disconnectedAt, .messagesIn, .messagesOut, .bytesIn, .bytesOut, .floods, .dropped) else . end)]'
    done
    wshostctl --json users list | jq -S .
    wshostctl --json consent list ann | jq -S .decisions
}
world >/tmp/before.json
ok "201 records open (100 declared, 100 run-time, ann's badge allowed through her consent channel)"

# (a)+(b) kill -9: systemd restarts it; the same world comes back; every record reconnects; no new prompt
restarts=$(prop NRestarts)
kill -9 "$(prop MainPID)"
wait_for 20 sh -c "[ \"\$(systemctl show -P NRestarts $UNIT)\" -gt $restarts ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
    fail "no restart after kill -9"
wait_for 30 sh -c '[ "$(wshostctl --json status | jq -r .open)" = 201 ]' || fail "after the restart: $(open_count) of 201 open"
world >/tmp/after.json
cmp -s /tmp/before.json /tmp/after.json || fail "the world changed across kill -9: $(diff /tmp/before.json /tmp/after.json | head -20)"
[ "$(wshostctl --json consent list ann | jq '.pending | length')" = 0 ] || fail "ann was asked again after the restart"
[ "$(wshostctl --json ws show lobby badge | jq -r .record.state)" = open ] || fail "ann's badge not open after the restart"
ok "kill -9: restarted, the same world (wshostctl --json), 201 records reconnected, ann's decision kept (not asked again)"

# (f) journal fields on connection events
pid5=$(prop MainPID)
entry=$(journal_json MESSAGE=connected _PID="$pid5" | head -1)
for f in SESSION_ID OBJECT_ID USER_ID WS_URL; do
    [ -n "$(echo "$entry" | jq -r ".$f // empty")" ] || fail "no $f on a 'connected' entry: $entry"
done
ok "journal: $(echo "$entry" | jq -c '{MESSAGE,SESSION_ID,OBJECT_ID,USER_ID,WS_URL}')"

# (d) reload: an added object appears and connects; a broken file changes nothing
printf '[[sessions.objects]]\nid = "added"\nurl = "ws://127.0.0.1:%s/added"\n' "$P" >>"$CONFIG"
# (appended after the badge: it belongs to the last [[sessions]], lobby)
systemctl reload "$UNIT" || fail "reload failed"
wait_for 10 sh -c '[ "$(wshostctl --json ws show lobby added | jq -r .record.state)" = open ]' || fail "added object not open after reload"
before_objects=$(wshostctl --json objects list lobby | jq '.objects | length')
printf '[websocket]\nidle_timeout = 60\n' >>"$CONFIG"
systemctl reload "$UNIT"
wait_for 5 sh -c "systemctl show -P StatusText $UNIT | grep -q 'last reload failed'" || fail "broken reload not reported"
[ "$(wshostctl --json objects list lobby | jq '.objects | length')" = "$before_objects" ] || fail "a broken reload changed the world"
ok "reload: added object open; broken file refused ($(systemctl show -P StatusText $UNIT | sed 's/.*last reload failed: //'))"
sed -i '$d' "$CONFIG"; sed -i '$d' "$CONFIG"
systemctl reload "$UNIT"

# (g) crash loop: 20 kill -9 at random moments during a stream of control changes
mkdir -p /run/systemd/system/$UNIT.d
printf '[Unit]\nStartLimitIntervalSec=0\n[Service]\nRestartSec=100ms\n' >/run/systemd/system/$UNIT.d/50-crash-loop.conf
systemctl daemon-reload
: >/tmp/acked
( i=0; while [ ! -e /tmp/stop-adding ]; do
      i=$((i + 1))
      wshostctl users add "crash$i" >/dev/null 2>&1 && echo "crash$i" >>/tmp/acked
  done ) &
adder=$!
for k in $(seq 20); do
    sleep "0.$((RANDOM % 5 + 1))"
    wait_for 10 sh -c "[ \"\$(systemctl show -P SubState $UNIT)\" = running ]" || fail "not running before kill $k"
    kill -9 "$(prop MainPID)" 2>/dev/null || true
done
wait_for 20 sh -c "[ \"\$(systemctl show -P SubState $UNIT)\" = running ]" || fail "not running after the crash loop"
sleep 1
touch /tmp/stop-adding; wait "$adder"
acked=$(wc -l </tmp/acked)
wshostctl --json users list | jq -r '.users[].id' | sort >/tmp/present
missing=$(sort /tmp/acked | comm -23 - /tmp/present | wc -l)
[ "$acked" -gt 20 ] || fail "only $acked changes were acknowledged during the crash loop"
[ "$missing" = 0 ] || fail "$missing acknowledged changes lost: $(sort /tmp/acked | comm -23 - /tmp/present | head)"
rm -rf /run/systemd/system/$UNIT.d; systemctl daemon-reload
ok "crash loop: 20 kill -9 during $acked acknowledged 'users add' — none lost (NRestarts=$(prop NRestarts))"

# (c) systemctl stop: the peer sees a 1001 Close on every connection; exit 0 within the deadline
wait_for 30 sh -c '[ "$(wshostctl --json status | jq -r .open)" = 202 ]' || fail "before stop: $(open_count) of 202 open"
closes() { cat /tmp/main.out /tmp/asked.out | grep -c '^CLOSED 1001$'; }
before_closes=$(closes)
t0=$(date +%s%N)
systemctl stop "$UNIT" || fail "stop failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] || fail "stop: Result=$(prop Result) status=$(prop ExecMainStatus)"
[ "$ms" -lt 5000 ] || fail "stop took ${ms} ms"
wait_for 5 sh -c "[ \$(( \$(cat /tmp/main.out /tmp/asked.out | grep -c '^CLOSED 1001$') - $before_closes )) -ge 202 ]" ||
    fail "the peers saw $(($(closes) - before_closes)) Close 1001, not 202"
ok "systemctl stop with 202 open: exit 0 in ${ms} ms; the peers saw $(($(closes) - before_closes)) Close 1001"

# 11. (e) a stalled event loop: the watchdog restarts the daemon. The stall comes
# from a test-only switch (SIGUSR2) compiled into a separate test binary; the
# shipped binary has no such code.
strings /usr/local/bin/wshostd | grep -q 'fault injection' && fail "the shipped binary contains the fault switch"
install -m 0755 /sandbox/bin/wshostd-faults /usr/local/bin/wshostd-faults
strings /usr/local/bin/wshostd-faults | grep -q 'fault injection' || fail "the test binary lacks the fault switch"
mkdir -p /run/systemd/system/$UNIT.d
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/wshostd-faults --config /etc/wshostd/wshostd.toml\nWatchdogSec=2s\nTimeoutAbortSec=2s\n' \
    >/run/systemd/system/$UNIT.d/60-stall.conf
systemctl daemon-reload
systemctl start "$UNIT" || fail "start of the test binary failed"
pid6=$(prop MainPID)
restarts=$(prop NRestarts)
kill -USR2 "$pid6"
wait_for 20 sh -c "[ \"\$(systemctl show -P NRestarts $UNIT)\" -gt $restarts ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
    fail "the watchdog did not restart the stalled daemon"
[ -n "$(journal_json MESSAGE='fault injection: stalling the event loop for 120 s' _PID="$pid6" | head -1)" ] || fail "no stall entry"
journalctl -b --no-pager -u "$UNIT" | grep -q "Watchdog timeout" || fail "no 'Watchdog timeout'"
[ "$(wshostctl --json status | jq -r .state)" = running ] || fail "not serving after the watchdog restart"
systemctl stop "$UNIT"
rm -rf /run/systemd/system/$UNIT.d; systemctl daemon-reload
ok "loop stall (test binary, SIGUSR2): watchdog timeout, pid $pid6 restarted as a new process, state restored"

echo "hardening: $(systemd-analyze security --no-pager $UNIT 2>/dev/null | tail -1)"
echo "$passed passed, 0 failed"
