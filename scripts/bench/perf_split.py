"""Splits `perf script -F comm,ip,sym` samples into named parts, each sample counted once:
the first part (in the order given) whose pattern is in its stack takes it.

Usage: perf script -i perf.data -F comm,ip,sym | python3 perf_split.py NAME=PATTERN[|PATTERN] ...
A NAME starting with "comm:" matches the thread name instead.
"""
import collections
import sys

parts = []
for arg in sys.argv[1:]:
    name, patterns = arg.split("=", 1)
    parts.append((name, patterns.split("|")))
counts = collections.Counter()
total = 0
comm = ""
stack = []


def flush():
    global total
    if not stack and not comm:
        return
    total += 1
    for name, patterns in parts:
        if name.startswith("comm:"):
            if any(p in comm for p in patterns):
                counts[name] += 1
                return
        elif any(p in frame for frame in stack for p in patterns):
            counts[name] += 1
            return
    counts["(other)"] += 1


for line in sys.stdin:
    if not line.strip():
        flush()
        stack, comm = [], ""
    elif not line.startswith((" ", "\t")):
        comm = line.split()[0]
    else:
        stack.append(line.strip())
flush()
for name, n in counts.most_common():
    print(f"{100 * n / max(total, 1):5.1f}%  {name}")
print(f"({total} samples)")
