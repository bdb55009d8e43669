"""Sandbox latency side by side with the bare Docker CLI, in one run.

    python bench/sandbox.py [--reps 20] [--execs 1000]

* cold start: create + start + first exec through DockerSandbox vs ``docker run --rm IMAGE true``
  (goal <= 1.2x);
* warm exec round trip: DockerSandbox.exec("true") vs ``docker exec CID true`` (goal <= 1.0x);
* N sequential execs in one container: host fd count and RSS sampled (after a GC pass) at
  the start and every quarter: flat, or the script says GROWING and exits 1.

Cold start here is what a run pays before its first command; ``docker run --rm`` also
removes its container, so "incl. close" is printed too.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import docker as dk  # noqa: E402
from sandbox.docker import DockerSandbox  # noqa: E402
from sandbox.image import ensure_image  # noqa: E402


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def snapshot() -> tuple[int, float]:
    """(open fds, RSS MiB) after a GC pass, so sockets waiting for collection don't count as leaks."""
    gc.collect()
    return fds(), rss() / 2**20


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--execs", type=int, default=1000)
    a = ap.parse_args()
    image = ensure_image()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    label = f"repro.run_id={run_id}"
    bare_cmd = ["docker", "run", "--rm", "--label", label, "--network", "none", "--user", "1000:1000", image, "true"]
    print(f"engine: Docker {dk.engine_version().get('Version')}, runtime "
          f"{'runsc' if 'runsc' in dk.runtimes() else 'runc'}; load average {os.getloadavg()[0]:.2f}; "
          f"median of {a.reps}")
    try:
        # warm-up, not measured: page cache, the once-per-process start-up reap, CLI start
        with DockerSandbox(run_id=run_id, image=image) as sb:
            sb.exec("true", timeout=60)
        subprocess.run(bare_cmd, check=True, capture_output=True)
        ours, ours_close, bare = [], [], []
        for _ in range(a.reps):  # interleaved so drift hits both sides alike
            t0 = time.perf_counter()
            sb = DockerSandbox(run_id=run_id, image=image)
            r = sb.exec("true", timeout=60)
            ours.append(time.perf_counter() - t0)
            assert r.ok, r.summary()
            sb.close()
            ours_close.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(bare_cmd, check=True, capture_output=True)
            bare.append(time.perf_counter() - t0)
        print(f"cold start   : ours {med(ours)*1000:7.1f} ms  docker run --rm {med(bare)*1000:7.1f} ms  "
              f"ratio {med(ours)/med(bare):.2f}x (goal <= 1.2x); ours incl. close {med(ours_close)*1000:.1f} ms "
              f"= {med(ours_close)/med(bare):.2f}x")

        with DockerSandbox(run_id=run_id, image=image) as sb:
            w_ours, w_cli = [], []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                sb.exec("true", timeout=60)
                w_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                subprocess.run(["docker", "exec", "-u", "1000:1000", sb.container.id, "true"], check=True,
                               capture_output=True)
                w_cli.append(time.perf_counter() - t0)
            print(f"warm exec    : ours {med(w_ours)*1000:7.1f} ms  docker exec     {med(w_cli)*1000:7.1f} ms  "
                  f"ratio {med(w_ours)/med(w_cli):.2f}x (goal <= 1.0x)")

            sb.exec("true", timeout=60)
            samples = [snapshot()]
            step = max(1, a.execs // 4)
            t0 = time.perf_counter()
            for i in range(a.execs):
                r = sb.exec(["echo", str(i)], timeout=60)
                assert r.stdout == f"{i}\n", r.summary()
                if (i + 1) % step == 0:
                    samples.append(snapshot())
            took = time.perf_counter() - t0
            f = [x[0] for x in samples]
            m = [x[1] for x in samples]
            flat = f[-1] - f[0] <= 4 and m[-1] - m[0] <= 16
            print(f"{a.execs} execs  : {took:.1f} s ({took / a.execs * 1000:.1f} ms each); host fds {f}; "
                  f"RSS MiB {[round(x, 1) for x in m]} -> {'flat' if flat else 'GROWING'}")
    finally:
        dk.reap(run_id)
        subprocess.run(["docker", "container", "prune", "-f", "--filter", f"label={label}"], capture_output=True)
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
