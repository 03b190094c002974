#!/usr/bin/env python3
"""Runs a command and prints what its whole process tree cost:

    cpu=SECONDS wall=SECONDS rss_kib=KIB hwm_sum_kib=KIB

cpu: user + system time of every process of the tree (getrusage of the
children: every descendant is waited for by its parent); wall: elapsed;
rss_kib: the largest sum of the tree's resident sets seen (polled every
10 ms from /proc); hwm_sum_kib: the sum over the tree's processes of each
one's own peak (VmHWM, last seen), an upper bound of the former.  On a
shared, loaded machine CPU time and memory are what can be compared; wall
time depends on what else runs.  For bench/*.sh; never part of the tests.

    bench/tree_measure.py COMMAND [ARGS...]   (stdout of COMMAND discarded)
"""
import os
import resource
import subprocess
import sys
import time


def children_of():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def status_kib(pid):
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def main():
    t0 = time.monotonic()
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = 0
    hwm = {}
    while p.poll() is None:
        kids = children_of()
        tree, todo = [], [p.pid]
        while todo:
            q = todo.pop()
            tree.append(q)
            todo.extend(kids.get(q, []))
        total = 0
        for q in tree:
            r, h = status_kib(q)
            total += r
            if h:
                hwm[q] = h
        peak = max(peak, total)
        time.sleep(0.01)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"tree_measure: {sys.argv[1]} exited with {p.returncode}")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"cpu={ru.ru_utime + ru.ru_stime:.3f} wall={wall:.3f} rss_kib={peak} "
          f"hwm_sum_kib={sum(hwm.values())}")


main()
