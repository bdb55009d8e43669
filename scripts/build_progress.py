"""Filter a verbose `pip install` of a CMake project down to a progress gauge.

Reads pip's output on stdin and prints a line each time the build passes another 10 % — from
Make's "[ 42%] Building ..." or Ninja's "[17/40] Building ..." — with the seconds spent so far.
On failure the last 40 lines are printed so the error is visible; the exit status says whether
pip reported success.
"""
from __future__ import annotations

import collections
import re
import sys
import time

MAKE = re.compile(r"^\s*\[\s*(\d{1,3})%\]")
NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]")


def percent(line: str) -> int | None:
    if m := MAKE.search(line):
        return int(m.group(1))
    if (m := NINJA.search(line)) and int(m.group(2)) > 0:
        return 100 * int(m.group(1)) // int(m.group(2))
    return None


def main() -> int:
    start = time.time()
    what = sys.argv[1] if len(sys.argv) > 1 else "build"
    shown = -10
    tail: collections.deque[str] = collections.deque(maxlen=40)
    ok = False
    for line in sys.stdin:
        tail.append(line.rstrip())
        ok = ok or "Successfully installed" in line
        p = percent(line)
        if p is not None and p >= shown + 10:
            shown = p // 10 * 10
            print(f"  {what}: {shown:3d}% compiled, {int(time.time() - start)} s so far", flush=True)
    if not ok:
        print("\n".join(tail), file=sys.stderr)
        return 1
    print(f"  {what}: installed in {int(time.time() - start)} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
