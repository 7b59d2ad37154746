#!/bin/bash
# N idle records (default 2000) against a silent loopback peer that answers
# pings, keepalive every 10 s, idle timeout 30 s: the daemon's epoll wake-ups
# (strace) and CPU ticks over 30 s, and its RSS. Uses the debug build.
#   bench/idle-wakeups.sh [N]
set -eu
N=${1:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/idle.XXXXXX)
$root/.venv/bin/python $root/Tests/peers/ws_peer.py silent >$work/peer.out 2>&1 &
peer=$!
for _ in $(seq 100); do grep -q '^PORT ' $work/peer.out && break; sleep 0.1; done
P=$(sed -n 's/^PORT //p' $work/peer.out)
{
  printf '[log]\nlevel = "notice"\ntarget = "stderr"\n[daemon]\nstate_directory = "%s/state"\n[control]\nsocket = "%s/c.sock"\n' $work $work
  printf '[websocket]\nidle_timeout = "30s"\nkeepalive_interval = "10s"\n[security]\nallowed_url_hosts = ["127.0.0.1:%s"]\n[[users]]\nid = "host"\n[[sessions]]\nid = "s"\nhost = "host"\n' $P
  for i in $(seq $N); do printf '[[sessions.objects]]\nid = "o%s"\nurl = "ws://127.0.0.1:%s/"\n' $i $P; done
} >$work/c.toml
$root/.build/debug/wshostd --config $work/c.toml 2>$work/d.log &
d=$!
for _ in $(seq 300); do
  open=$($root/.build/debug/wshostctl --socket $work/c.sock --json status 2>/dev/null | jq -r .open || echo 0)
  [ "$open" = "$N" ] && break; sleep 0.2
done
echo "open: $open"
sleep 3
sum() { cat /proc/$d/task/*/status | awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s+=$2} END {print s}'; }
cpu() { awk '{print $14+$15}' /proc/$d/stat; }
c0=$(cpu); timeout 30 strace -f -qq -e trace=epoll_wait,epoll_pwait,epoll_pwait2 -p $d -o $work/strace.out 2>/dev/null || true; c1=$(cpu); s0=0; s1=$(grep -c epoll $work/strace.out)
echo "threads: $(ls /proc/$d/task | wc -l); epoll waits in 30 s: $((s1 - s0)); cpu ticks: $((c1 - c0)) (of 3000 per core)"
grep VmRSS /proc/$d/status
kill -TERM $d; wait $d || true
kill $peer; rm -rf $work
