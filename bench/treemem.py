"""Runs a command and prints "WALL_SECONDS PEAK_TREE_KIB": the wall time
and the largest sum, over the samples taken every 20 ms, of the
proportional resident sets (Pss: a page shared by two processes counts
half in each, so that a file both map, like alloctrace's spool, counts
once) of the command and all its descendants: what the machine holds
for the whole run, a tracer's helper processes included.
Used by bench/peers_bench.sh; never part of the tests.

    python3 bench/treemem.py [--time-only] OUT COMMAND [ARGS...]

--time-only takes no samples (the peak printed is 0): reading smaps_rollup
walks every page table of every process, 50 times a second, and slowed
the traced runs by up to a fifth (clang++ under alloctrace: 4.0 -> 4.9 s),
more for a tracer with large sparse mappings than for another.

The figures are appended to the file OUT; the command's own input and
output are left as they are."""
import os
import subprocess
import sys
import time



def children_of():
    """Maps each pid to its children, read from /proc."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_rss_kib(root):
    kids = children_of()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def main():
    args = sys.argv[1:]
    sample = not (args and args[0] == "--time-only")
    if not sample:
        args = args[1:]
    t0 = time.monotonic()
    proc = subprocess.Popen(args[1:])
    peak = 0
    while sample and proc.poll() is None:
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.02)
    proc.wait()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"treemem: {args[1]} exited with {proc.returncode}")
    with open(args[0], "a") as out:
        print(f"{wall:.3f} {peak}", file=out)


main()
