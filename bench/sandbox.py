"""Sandbox latency side by side with the bare Docker CLI, in one run.

    python bench/sandbox.py [--reps 20] [--execs 1000]

* cold start: create + start + first exec through DockerSandbox vs ``docker run --rm IMAGE true``
  (goal <= 1.2x);
* warm exec round trip: DockerSandbox.exec("true") vs ``docker exec CID true`` (goal <= 1.0x);
* N sequential execs in one container: host fd count and RSS before/after (should be flat).
"""
from __future__ import annotations

import argparse
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--execs", type=int, default=1000)
    a = ap.parse_args()
    image = ensure_image()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    label = f"repro.run_id={run_id}"
    try:
        ours, bare = [], []
        for _ in range(a.reps):  # interleaved so drift hits both sides alike
            t0 = time.perf_counter()
            sb = DockerSandbox(run_id=run_id, image=image)
            r = sb.exec("true", timeout=60)
            ours.append(time.perf_counter() - t0)
            assert r.ok, r.summary()
            sb.close()
            t0 = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--label", label, "--network", "none", image, "true"], check=True,
                           capture_output=True)
            bare.append(time.perf_counter() - t0)
        print(f"cold start   : ours {med(ours)*1000:7.1f} ms  docker run --rm {med(bare)*1000:7.1f} ms  "
              f"ratio {med(ours)/med(bare):.2f}x (goal <= 1.2x)")

        with DockerSandbox(run_id=run_id, image=image) as sb:
            w_ours, w_cli = [], []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                sb.exec("true", timeout=60)
                w_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                subprocess.run(["docker", "exec", "-u", "1000:1000", sb.container.id, "true"], check=True, capture_output=True)
                w_cli.append(time.perf_counter() - t0)
            print(f"warm exec    : ours {med(w_ours)*1000:7.1f} ms  docker exec     {med(w_cli)*1000:7.1f} ms  "
                  f"ratio {med(w_ours)/med(w_cli):.2f}x (goal <= 1.0x)")

            sb.exec("true", timeout=60)
            f0, r0 = fds(), rss()
            t0 = time.perf_counter()
            for i in range(a.execs):
                r = sb.exec(["echo", str(i)], timeout=60)
                assert r.stdout == f"{i}\n"
            took = time.perf_counter() - t0
            f1, r1 = fds(), rss()
            print(f"{a.execs} execs  : {took:.1f} s ({took / a.execs * 1000:.1f} ms each); fds {f0} -> {f1}; "
                  f"RSS {r0 / 2**20:.1f} -> {r1 / 2**20:.1f} MiB")
    finally:
        dk.reap(run_id)
        subprocess.run(["docker", "container", "prune", "-f", "--filter", f"label={label}"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
