#!/bin/bash
# The fleet suite (issue #16, docs/fleet.md): a real PostgreSQL 15 on loopback
# (initdb in a temporary directory, run as an unprivileged user) and three
# wshostd hosts sharing one declared world of SESSIONS × OBJECTS records
# against a loopback peer (integration/fleet/peer.py, the third-party
# `websockets` server) that records, per object, which host is connected.
# Each host reaches the database through its own TCP proxy (proxy.py), so
# that one host can be cut from the database only.
#   1. the hosts spread the sessions between them (fair share, hand-over);
#   2. kill -9 one host: the others hold and reconnect its objects within
#      lease + claim + pacing (the distribution is printed);
#   3. SIGSTOP a host past its lease, SIGCONT: it closes its sockets at once,
#      and no two hosts are connected for one object after that;
#   4. cut one host from the database only: it fences itself within the renew
#      deadline, the others take over, and it comes back when healed;
#   5. restart PostgreSQL: the fleet recovers without anyone's help, nothing
#      stored is lost;
#   and over the whole run, outside the SIGSTOP window, never two hosts
#   connected for one object at the same moment (the peer's record).
#   integration/fleet/run.sh [--bin DIR] [--sessions N] [--objects M]
# Prints "fleet: N passed, 0 failed" or fails. About 2 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/integration/fleet
bin=""
sessions=60
objects=5
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --sessions) sessions=$2; shift 2 ;;
        --objects) objects=$2; shift 2 ;;
        *) sed -n '2,22p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$bin" ] || bin=$(swift build --package-path "$root" --show-bin-path)
python=$root/.venv/bin/python
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "fleet: PostgreSQL is not installed (scripts/setup.sh)" >&2; exit 1; }
pguser=nobody
records=$((sessions * objects))
# Short timing, so that the suite stays short: lease 6 s, renew deadline 4 s,
# a round every second (the fence's grace is (6 - 4) / 2 = 1 s).
lease=6
deadline=4
work=$(mktemp -d /tmp/wshostd-fleet.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for h in 1 2 3; do [ -n "${host_pid[$h]:-}" ] && kill -CONT "${host_pid[$h]}" 2>/dev/null || true; done
    kill $(jobs -p) 2>/dev/null || true
    [ -f "$work/pg/postmaster.pid" ] && runuser -u "$pguser" -- "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    [ -n "${WSHOSTD_FLEET_KEEP:-}" ] && echo "fleet: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
passed=0
fail() {
    echo "fleet: FAILED: $*" >&2
    for h in 1 2 3; do echo "--- host h$h (tail)" >&2; grep -v ' connected \| disconnected' "$work/h$h.log" | tail -12 >&2 || true; done
    echo "--- postgres (tail)" >&2; tail -10 "$work/pgsock/pg.log" >&2 || true
    exit 1
}
pass() { passed=$((passed + 1)); echo "ok: $*"; }
free_port() { echo $((20000 + RANDOM % 20000)); }
now() { date +%s.%N; }
psql_() { psql -X -q -t -A -h 127.0.0.1 -p "$p_pg" -U wshostd -d fleet -c "$1"; }
analyse() { "$python" "$here/analyse.py" "$work/peer.log" "$@"; }
# Waits up to $1 seconds for `analyse state` to say: all objects connected, none twice.
wait_all_connected() {
    local state=""
    for _ in $(seq $(($1 * 5))); do
        state=$(analyse state)
        set -- "$1" $state
        [ "${2:-0}" = "$records" ] && [ "${3:-1}" = 0 ] && return 0
        sleep 0.2
    done
    echo "$state"
    return 1
}

# --- PostgreSQL 15, as an unprivileged user, on loopback -------------------
mkdir "$work/pg" "$work/pgsock"
chown "$pguser" "$work/pg" "$work/pgsock"
runuser -u "$pguser" -- "$pgbin/initdb" -D "$work/pg" -U wshostd --auth=trust -E UTF8 >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; fail "initdb"; }
p_pg=$(free_port)
start_pg() {
    runuser -u "$pguser" -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pgsock/pg.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $p_pg -k $work/pgsock -c fsync=on" start >/dev/null
}
start_pg || fail "postgres did not start"
psql -X -q -h 127.0.0.1 -p "$p_pg" -U wshostd -d postgres -c "CREATE DATABASE fleet" || fail "createdb"

# --- the peer, the proxies, three hosts -------------------------------------
p_peer=$(free_port)
"$python" "$here/peer.py" --port "$p_peer" --log "$work/peer.log" >"$work/peer.out" 2>&1 &
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p_peer") 2>/dev/null && break; sleep 0.05; done
declare -A host_pid proxy_pid
for h in 1 2 3; do
    p_proxy=$(free_port)
    "$python" "$here/proxy.py" --listen "$p_proxy" --to "$p_pg" >"$work/proxy$h.out" 2>&1 &
    proxy_pid[$h]=$!
    {
        printf '[log]\nlevel = "info"\ntarget = "stderr"\n'
        printf '[daemon]\nstate_directory = "%s/h%s"\nstop_timeout = "2s"\n' "$work" "$h"
        printf '[control]\nsocket = "%s/h%s.sock"\n' "$work" "$h"
        printf '[fleet]\ndatabase = "host=127.0.0.1 port=%s user=wshostd dbname=fleet connect_timeout=2"\n' "$p_proxy"
        printf 'host_id = "h%s"\nlease = "%ss"\nrenew_deadline = "%ss"\nretry_period = "1s"\n' "$h" "$lease" "$deadline"
        printf '[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n' "$p_peer"
        printf '[[users]]\nid = "host"\n'
        for s in $(seq "$sessions"); do
            printf '[[sessions]]\nid = "s%s"\nhost = "host"\n' "$s"
            for o in $(seq "$objects"); do
                printf '[[sessions.objects]]\nid = "o%s"\nurl = "ws://127.0.0.1:%s/s%s-o%s"\n' "$o" "$p_peer" "$s" "$o"
            done
        done
    } >"$work/h$h.toml"
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p_proxy") 2>/dev/null && break; sleep 0.05; done
done
start_host() {
    "$bin/wshostd" --config "$work/h$1.toml" 2>>"$work/h$1.log" &
    host_pid[$1]=$!
}
for h in 1 2 3; do start_host $h; done

# 1. Spread: every object connected once, every host holding a third.
wait_all_connected 40 || fail "not every object connected once within 40 s"
for _ in $(seq 100); do
    spread=$(psql_ "SELECT string_agg(owner || '=' || n, ' ' ORDER BY owner) FROM (SELECT owner, count(*) n FROM wshostd_sessions GROUP BY owner) x")
    [ "$spread" = "h1=$((sessions / 3)) h2=$((sessions / 3)) h3=$((sessions / 3))" ] && break
    sleep 0.2
done
[ "$spread" = "h1=$((sessions / 3)) h2=$((sessions / 3)) h3=$((sessions / 3))" ] || fail "sessions not spread: $spread"
wait_all_connected 20 || fail "after the spread, not every object connected once"
pass "$records records in $sessions sessions: every object connected by exactly one host; sessions held $spread; peer: $(analyse state)"

# The operators' view, and the world's one source while it is not shared.
status=$("$bin/wshostctl" --socket "$work/h2.sock" status) || fail "wshostctl status on h2"
grep -q "fleet host h2 epoch 1, $((sessions / 3)) sessions held" <<<"$status" || fail "status of h2 does not show its fleet state: $status"
refused=0
out=$("$bin/wshostctl" --socket "$work/h2.sock" users add someone 2>&1) || refused=$?
[ "$refused" = 1 ] && grep -q "in a fleet" <<<"$out" || fail "a run-time world change in a fleet was not refused ($refused): $out"
pass "wshostctl status says 'fleet host h2 epoch 1, $((sessions / 3)) sessions held'; a run-time world change is refused (the world comes from the shared config)"

# 2. kill -9: the others take over within lease + claim + pacing.
t_kill=$(now)
kill -9 "${host_pid[1]}"
wait "${host_pid[1]}" 2>/dev/null || true
wait_all_connected $((lease + 20)) || fail "after kill -9 of h1, its objects were not all taken over"
read -r n missing p50 p90 max <<<"$(analyse takeover --at "$t_kill" --host h1)"
[ "$missing" = 0 ] && [ "$n" -gt 0 ] || fail "takeover after kill -9: $n taken, $missing missing"
bound=$((lease + 3))
awk -v m="$max" -v b="$bound" 'BEGIN { exit !(m <= b) }' || fail "takeover after kill -9 took $max s (bound $bound s)"
pass "kill -9 h1: its $n objects reconnected by h2/h3 after p50 $p50 s, p90 $p90 s, max $max s (lease ${lease}s + a round + pacing; bound ${bound}s)"
echo "takeover-kill9: n=$n p50=$p50 p90=$p90 max=$max"

# h1 comes back (a new epoch) and the fleet spreads again.
start_host 1
for _ in $(seq 150); do
    spread=$(psql_ "SELECT string_agg(owner || '=' || n, ' ' ORDER BY owner) FROM (SELECT owner, count(*) n FROM wshostd_sessions GROUP BY owner) x")
    [ "$spread" = "h1=$((sessions / 3)) h2=$((sessions / 3)) h3=$((sessions / 3))" ] && break
    sleep 0.2
done
wait_all_connected 20 || fail "after h1 came back, not every object connected once"
pass "h1 back: sessions held $spread, every object connected once"

# 3. SIGSTOP past the lease, then SIGCONT.
t_stop=$(now)
kill -STOP "${host_pid[2]}"
sleep $((lease + 4))
read -r n missing _ _ max <<<"$(analyse takeover --at "$t_stop" --host h2)"
[ "$missing" = 0 ] || fail "while h2 was stopped, $missing of its objects were not taken over"
t_cont=$(now)
kill -CONT "${host_pid[2]}"
sleep 2
read -r closed count <<<"$(analyse closed-by --host h2 --after "$t_cont")"
[ "$closed" != never ] || fail "h2 resumed after its lease and kept its sockets open"
awk -v c="$closed" 'BEGIN { exit !(c <= 1.0) }' || fail "h2 resumed and took $closed s to close its sockets"
grep -q 'fenced: lease not renewed' "$work/h2.log" || fail "h2 did not say it fenced itself"
pass "SIGSTOP h2 for $((lease + 4)) s: taken over meanwhile (max $max s); after SIGCONT its $count stale sockets closed within $closed s"
wait_all_connected 30 || fail "after h2 resumed, not every object connected once"

# 4. Cut h3 from the database only.
for _ in $(seq 100); do
    spread=$(psql_ "SELECT string_agg(owner || '=' || n, ' ' ORDER BY owner) FROM (SELECT owner, count(*) n FROM wshostd_sessions GROUP BY owner) x")
    [[ "$spread" == *h3=* ]] && break
    sleep 0.2
done
wait_all_connected 20 || fail "before the cut, not every object connected once"
t_cut=$(now)
kill -USR1 "${proxy_pid[3]}"
sleep $((deadline + 2))
read -r closed count <<<"$(analyse closed-by --host h3 --after "$t_cut")"
[ "$closed" != never ] || fail "h3, cut from the database, kept its sockets open"
limit=$((deadline + 1))
awk -v c="$closed" -v l="$limit" 'BEGIN { exit !(c <= l) }' || fail "h3 closed its sockets $closed s after the cut (limit ${limit} s)"
wait_all_connected $((lease + 10)) || fail "after h3 was cut, its objects were not all taken over"
read -r n missing p50 _ max <<<"$(analyse takeover --at "$t_cut" --host h3)"
pass "h3 cut from the database: its $count sockets closed $closed s after the cut (renew deadline ${deadline}s + grace); the others took its $n objects over after p50 $p50 s, max $max s"
kill -USR2 "${proxy_pid[3]}"
for _ in $(seq 100); do
    grep -q 'joined the fleet fleet.epoch=[2-9]' "$work/h3.log" && break
    sleep 0.2
done
grep -q 'joined the fleet fleet.epoch=[2-9]' "$work/h3.log" || fail "h3 did not join again after the network healed"
pass "h3 joined again with a new epoch once the network healed"

# 5. Restart PostgreSQL (once the fleet is spread again: no hand-over under way).
for _ in $(seq 150); do
    spread=$(psql_ "SELECT string_agg(owner || '=' || n, ' ' ORDER BY owner) FROM (SELECT owner, count(*) n FROM wshostd_sessions GROUP BY owner) x")
    [ "$spread" = "h1=$((sessions / 3)) h2=$((sessions / 3)) h3=$((sessions / 3))" ] && break
    sleep 0.2
done
wait_all_connected 30 || fail "before the database restart, not every object connected once"
sleep 3  # the last hand-over's stragglers
rows_before=$(psql_ "SELECT count(*) FROM wshostd_sessions")
t_pg=$(now)
runuser -u "$pguser" -- "$pgbin/pg_ctl" -D "$work/pg" -m fast -w restart -o "-c listen_addresses=127.0.0.1 -p $p_pg -k $work/pgsock" >/dev/null ||
    fail "postgres did not restart"
sleep $((deadline + 3))
wait_all_connected 30 || fail "after the database restart, not every object connected once"
rows_after=$(psql_ "SELECT count(*) FROM wshostd_sessions")
[ "$rows_before" = "$rows_after" ] && [ "$rows_after" = "$sessions" ] ||
    fail "sessions stored before/after the restart: $rows_before/$rows_after"
members=$(psql_ "SELECT count(*) FROM wshostd_hosts WHERE lease_until > now()")
[ "$members" = 3 ] || fail "after the database restart, $members hosts hold a lease"
drops=$(awk -v t="$t_pg" '$1 >= t && $2 == "close"' "$work/peer.log" | wc -l)
[ "$drops" = 0 ] || fail "the database restart (shorter than the renew deadline) cost $drops connections"
pass "PostgreSQL restarted: the fleet recovered by itself (3 leases, $rows_after sessions stored, every object connected, no connection dropped: the restart was shorter than the renew deadline)"

# Over the whole run: never two hosts for one object, outside the SIGSTOP window.
t_gap=$(awk -v t="$t_cont" 'BEGIN { printf "%.3f", t + 1.0 }')
overlaps=$(analyse overlaps --except "$t_stop" "$t_gap")
[ "$(head -1 <<<"$overlaps")" = 0 ] || fail "two hosts connected for one object: $overlaps"
inside=$(analyse overlaps --count)
pass "never two hosts connected for one object outside the SIGSTOP window (inside it, $inside overlaps, all ended within 1 s of SIGCONT)"

# Stop: a host that stops hands its sessions over at once.
t_term=$(now)
kill -TERM "${host_pid[3]}"
wait "${host_pid[3]}" || fail "h3 did not exit 0 on SIGTERM"
grep -q 'left the fleet' "$work/h3.log" || fail "h3 did not leave the fleet when it stopped"
wait_all_connected 10 || fail "after h3 stopped, its objects were not taken over within 10 s"
read -r n missing p50 _ max <<<"$(analyse takeover --at "$t_term" --host h3)"
pass "SIGTERM h3: it left the fleet; the others took its $n objects over after p50 $p50 s, max $max s (no lease to wait for)"

echo "fleet: $passed passed, 0 failed"
