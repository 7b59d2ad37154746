#!/usr/bin/env python3
"""Reads the peer's record (peer.py: "<time> open|close <object> <host> <id>")
and answers the fleet test's questions, one line of output each:

    analyse.py LOG state [--objects N]
        "<objects connected> <objects with two hosts> <host>=<count> ..." now
    analyse.py LOG takeover --at T --host H
        for every object H was connected for at T: the delay until another
        host connected it; "<n> <missing> p50 p90 max" in seconds
    analyse.py LOG closed-by --host H --after T
        seconds from T until H's last connection that was open at T closed
        ("never" while one is still open)
    analyse.py LOG who --object O
        the hosts connected for object O now
    analyse.py LOG overlaps [--except START END]...
        "<n>" pairs of connections of two different hosts open at the same
        moment for one object, outside the windows given; then one line each
"""
import argparse
import sys


def read(path):
    opened = {}  # id -> (object, host, start)
    intervals = []  # (object, host, start, end or None)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue
            t, kind, obj, host, cid = float(parts[0]), parts[1], parts[2], parts[3], parts[4]
            if kind == "open":
                opened[cid] = (obj, host, t)
            elif kind == "close" and cid in opened:
                o, h, s = opened.pop(cid)
                intervals.append((o, h, s, t))
    for o, h, s in opened.values():
        intervals.append((o, h, s, None))
    return intervals


def live_at(intervals, t):
    return [i for i in intervals if i[2] <= t and (i[3] is None or i[3] > t)]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("what", choices=["state", "takeover", "closed-by", "overlaps", "who"])
    parser.add_argument("--at", type=float)
    parser.add_argument("--after", type=float)
    parser.add_argument("--host")
    parser.add_argument("--object")
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--except", dest="windows", nargs=2, type=float, action="append", default=[])
    a = parser.parse_args()
    intervals = read(a.log)
    if a.what == "state":
        now = max([i[2] for i in intervals] + [i[3] for i in intervals if i[3]] + [0]) + 1e-6
        live = [i for i in intervals if i[3] is None]
        by_object = {}
        for o, h, _, _ in live:
            by_object.setdefault(o, set()).add(h)
        hosts = {}
        for o, hs in by_object.items():
            for h in hs:
                hosts[h] = hosts.get(h, 0) + 1
        doubled = sum(1 for hs in by_object.values() if len(hs) > 1)
        print(len(by_object), doubled, " ".join(f"{h}={n}" for h, n in sorted(hosts.items())))
    elif a.what == "who":
        print(" ".join(sorted({h for o, h, _, end in intervals if o == a.object and end is None})))
    elif a.what == "takeover":
        held = {o for o, h, _, _ in live_at(intervals, a.at) if h == a.host}
        delays = []
        for o in held:
            starts = [s for oo, h, s, _ in intervals if oo == o and h != a.host and s >= a.at]
            if starts:
                delays.append(min(starts) - a.at)
        missing = len(held) - len(delays)
        if delays:
            print(len(delays), missing, f"{percentile(delays, 0.5):.2f} {percentile(delays, 0.9):.2f} {max(delays):.2f}")
        else:
            print(0, missing, "- - -")
    elif a.what == "closed-by":
        mine = [i for i in live_at(intervals, a.after) if i[1] == a.host]
        if any(i[3] is None for i in mine):
            print("never", len(mine))
        else:
            print(f"{max([i[3] for i in mine] + [a.after]) - a.after:.2f}", len(mine))
    else:
        found = []
        by_object = {}
        for i in intervals:
            by_object.setdefault(i[0], []).append(i)
        for o, items in by_object.items():
            for x in range(len(items)):
                for y in range(x + 1, len(items)):
                    p, q = items[x], items[y]
                    if p[1] == q[1]:
                        continue
                    start = max(p[2], q[2])
                    end = min(p[3] if p[3] is not None else float("inf"), q[3] if q[3] is not None else float("inf"))
                    if start >= end:
                        continue
                    # The part of the overlap outside every allowed window.
                    pieces = [(start, end)]
                    for ws, we in a.windows:
                        pieces = [piece for s, e in pieces for piece in ((s, min(e, ws)), (max(s, we), e)) if piece[0] < piece[1]]
                    for s, e in pieces:
                        found.append(f"{o}: {p[1]} and {q[1]} both connected from {s:.3f} to {e:.3f}")
        print(len(found))
        if not a.count:
            for line in found[:20]:
                print(line)


main()
