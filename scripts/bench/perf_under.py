"""Where the samples under a function go: `perf script` stacks, folded.

Usage: perf script -i perf.data -F sym | python3 perf_under.py PATTERN [DEPTH]
Prints, for the samples whose stack contains PATTERN, the share of all samples, and the
frames DEPTH levels below PATTERN (default 1) by share of all samples.
"""
import collections
import sys

pattern = sys.argv[1]
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 1
total = 0
under = 0
below = collections.Counter()
stack = []


def flush():
    global total, under
    if not stack:
        return
    total += 1
    # perf script prints the leaf first.
    for i, frame in enumerate(stack):
        if pattern in frame:
            under += 1
            child = stack[i - depth] if i - depth >= 0 else "(self)"
            below[child[:140]] += 1
            break


for line in sys.stdin:
    line = line.strip()
    if not line:
        flush()
        stack = []
        continue
    parts = line.split(None, 1)
    stack.append(parts[1] if len(parts) > 1 and all(c in "0123456789abcdef" for c in parts[0]) else line)
flush()
print(f"{pattern}: {100 * under / max(total, 1):.1f}% of {total} samples")
for frame, n in below.most_common(25):
    print(f"  {100 * n / total:5.1f}%  {frame}")
