"""Sandbox latency side by side with the Docker SDK doing the same work, in one run.

    python bench/sandbox.py [--reps 15] [--warm-reps 200] [--execs 1000]

Baseline: the Docker SDK (docker-py, through ``sandbox.docker.client()``), never a ``docker``
CLI, so no client version or CLI start-up enters the figure. Both sides talk to the same
engine over the same socket; the two sides are interleaved (A B A B ...) so drift hits both
alike, and medians are reported.

* cold start, create to removal: ``DockerSandbox(...)`` + first ``exec(["true"])`` + ``close()``
  vs the SDK's ``docker run --rm``: ``volumes.create`` + ``containers.run(remove=True, **kw)``
  + volume removal, where ``kw`` is ``SandboxPolicy.docker_kwargs(...)`` for the same policy,
  image and runtime (network none, read-only root, cap-drop ALL, no-new-privileges, PID 1 user,
  pids/memory/swap/CPU limits, /tmp tmpfs, shm size, ulimits, dns, the same size- and
  inode-capped tmpfs workspace volume, labels). Only ``command`` differs: ``true`` as PID 1
  (policy.pid1_user) instead of the lifetime sleep plus an exec as policy.user. The warm-up checks that a container made from these kwargs passes
  ``SandboxPolicy.check_container`` (goal <= 1.2x). That run does less than a sandbox: it runs
  no exec (``true`` is PID 1 and the container exits by itself) and removes an exited container,
  not a running one. So a third side, interleaved with the two, is the SDK doing the sandbox's
  work: the same kwargs with the lifetime command, ``containers.create`` + ``start`` +
  ``exec_run(["true"])`` as policy.user + ``remove(force=True, v=True)`` + volume removal. The
  output splits ours' gap over the SDK run into: the exec (the SDK's own, same run), keeping the
  container alive and removing it running (SDK same work minus its exec minus the SDK run), and
  ours over the SDK doing the same work (the policy check of the engine's inspect, Python), the
  last taken as the remainder so the three add up to the gap;
* warm exec round trip, on the SAME container: ``DockerSandbox.exec(["true"])`` vs the SDK's
  ``container.exec_run(["true"])`` with the same user, workdir and (empty) environment: our
  overhead over the SDK (goal <= 1.1x);
* N sequential execs in one container: host fd count and RSS sampled (after a GC pass) at
  the start and every quarter: flat, or the script says GROWING and exits 1.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import docker as dk  # noqa: E402
from sandbox.docker import DockerSandbox  # noqa: E402
from sandbox.image import ensure_image  # noqa: E402
from sandbox.policy import SandboxPolicy  # noqa: E402

BASELINE = "docker SDK (docker-py) containers.run(remove=True) with SandboxPolicy.docker_kwargs"


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


def baseline_kwargs(policy: SandboxPolicy, *, image: str, run_id: str, runtime: str | None,
                    lifetime: bool = False) -> tuple[dict, dict]:
    """(container kwargs, volume kwargs) exactly as DockerSandbox builds them; command ``true``
    unless ``lifetime`` (then the policy's lifetime PID 1, as a sandbox has)."""
    name = f"repro-{run_id}-agent-{uuid.uuid4().hex[:8]}"
    labels = policy.labels(run_id=run_id, role="agent")
    kw = policy.docker_kwargs(image=image, run_id=run_id, role="agent", volume=name, runtime=runtime, name=name)
    kw["labels"] = labels
    kw.pop("detach", None)
    if not lifetime:
        kw["command"] = ["true"]
    vol = dict(name=name, driver="local", driver_opts=policy.volume_driver_opts(), labels=labels)
    return kw, vol


def baseline_cold(policy: SandboxPolicy, *, image: str, run_id: str, runtime: str | None) -> None:
    """``docker volume create`` + ``docker run --rm`` + ``docker volume rm``, through the SDK."""
    c = dk.client()
    kw, vkw = baseline_kwargs(policy, image=image, run_id=run_id, runtime=runtime)
    vol = c.volumes.create(**vkw)
    try:
        c.containers.run(remove=True, **kw)  # raises ContainerError on a non-zero exit
    finally:
        vol.remove(force=True)


def baseline_same_work(policy: SandboxPolicy, *, image: str, run_id: str, runtime: str | None) -> dict[str, float]:
    """The SDK doing a sandbox's work: volume + create (lifetime PID 1) + start, ``exec_run(["true"])``
    as policy.user, remove the running container + volume. Returns the seconds of each phase."""
    c = dk.client()
    kw, vkw = baseline_kwargs(policy, image=image, run_id=run_id, runtime=runtime, lifetime=True)
    t0 = time.perf_counter()
    vol = c.volumes.create(**vkw)
    ct = None
    try:
        ct = c.containers.create(**kw)
        ct.start()
        t1 = time.perf_counter()
        er = ct.exec_run(["true"], user=policy.user, workdir=policy.workdir, environment={}, stdin=False, tty=False)
        t2 = time.perf_counter()
        assert er.exit_code == 0, er
    finally:
        t2 = time.perf_counter() if ct is None else t2
        if ct is not None:
            ct.remove(force=True, v=True)
        vol.remove(force=True)
    t3 = time.perf_counter()
    return {"start": t1 - t0, "exec": t2 - t1, "close": t3 - t2, "whole": t3 - t0}


def check_baseline_policy(policy: SandboxPolicy, *, image: str, run_id: str, runtime: str | None,
                          lifetime: bool = False) -> None:
    """A container created from the baseline kwargs must pass the same drift check as ours."""
    c = dk.client()
    kw, vkw = baseline_kwargs(policy, image=image, run_id=run_id, runtime=runtime, lifetime=lifetime)
    vol = c.volumes.create(**vkw)
    ct = None
    try:
        ct = c.containers.create(**kw)
        problems = policy.check_container(c.api.inspect_container(ct.id), runtime)
        if problems:
            raise SystemExit("baseline container does not match the policy: " + "; ".join(problems))
    finally:
        if ct is not None:
            ct.remove(force=True, v=True)
        vol.remove(force=True)


def goal(ratio: float, limit: float) -> str:
    return f"(goal <= {limit}x: {'met' if ratio <= limit else 'MISSED'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15, help="cold starts per side")
    ap.add_argument("--warm-reps", type=int, default=200, help="warm execs per side")
    ap.add_argument("--execs", type=int, default=1000, help="sequential execs for the fd/RSS check")
    a = ap.parse_args()
    image = ensure_image()
    policy = SandboxPolicy()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    runtime = policy.resolve_runtime(dk.runtimes())
    print(f"engine: Docker {dk.engine_version().get('Version')}, runtime {runtime or 'runc'}; "
          f"load average {os.getloadavg()[0]:.2f}; baseline: {BASELINE}; interleaved A B C, order rotated, medians")
    flat = False
    try:
        # warm-up, not measured: page cache, the once-per-process start-up reap, first connections
        check_baseline_policy(policy, image=image, run_id=run_id, runtime=runtime)
        check_baseline_policy(policy, image=image, run_id=run_id, runtime=runtime, lifetime=True)
        for _ in range(2):
            with DockerSandbox(policy, run_id=run_id, image=image) as sb:
                assert sb.exec(["true"], timeout=60).ok
            baseline_cold(policy, image=image, run_id=run_id, runtime=runtime)
            baseline_same_work(policy, image=image, run_id=run_id, runtime=runtime)

        def run_ours() -> dict[str, float]:
            t0 = time.perf_counter()
            sb = DockerSandbox(policy, run_id=run_id, image=image)
            t1 = time.perf_counter()
            r = sb.exec(["true"], timeout=60)
            t2 = time.perf_counter()
            sb.close()
            t3 = time.perf_counter()
            assert r.ok, r.summary()
            return {"start": t1 - t0, "exec": t2 - t1, "close": t3 - t2, "whole": t3 - t0}

        def run_sdk() -> dict[str, float]:
            t0 = time.perf_counter()
            baseline_cold(policy, image=image, run_id=run_id, runtime=runtime)
            return {"whole": time.perf_counter() - t0}

        sides = {"ours": run_ours, "sdk": run_sdk,
                 "same": lambda: baseline_same_work(policy, image=image, run_id=run_id, runtime=runtime)}
        got: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
        names = list(sides)
        for i in range(a.reps):  # interleaved, the order rotated each round so drift hits all alike
            for k in names[i % 3:] + names[:i % 3]:
                got[k].append(sides[k]())

        def m(side: str, phase: str = "whole") -> float:
            return med([g[phase] for g in got[side]]) * 1000

        ratio = m("ours") / m("sdk")
        print(f"cold start incl. close ({a.reps} each): ours {m('ours'):.1f} ms  SDK run --rm "
              f"{m('sdk'):.1f} ms  ratio {ratio:.2f}x {goal(ratio, 1.2)}")
        gap, exec_ms = m("ours") - m("sdk"), m("same", "exec")
        alive = m("same") - exec_ms - m("sdk")
        print(f"  of which {gap:.1f} ms over the SDK run, measured in this run:\n"
              f"  {exec_ms:8.1f} ms  work the SDK run does not do: the exec of `true` in the running container "
              "(the SDK's exec_run; the SDK run has no exec, `true` is its PID 1)\n"
              f"  {alive:8.1f} ms  work the SDK run does not do: a container kept alive and removed running "
              "(SDK same work minus its exec, minus the SDK run)\n"
              f"  {gap - exec_ms - alive:8.1f} ms  ours over the SDK doing the same work (the remainder: the policy "
              "check, Python)")
        print(f"  {'phase, medians in ms':34}{'ours':>8}{'SDK same work':>15}")
        for phase, what in (("start", "volume + create + start"), ("exec", "exec `true` as the user"),
                            ("close", "remove running + volume"), ("whole", "whole")):
            print(f"  {what:34}{m('ours', phase):>8.1f}{m('same', phase):>15.1f}")
        same = m("ours") / m("same")
        print(f"cold start, same work ({a.reps} each): ours {m('ours'):.1f} ms  SDK create + start + exec_run + "
              f"remove(force) {m('same'):.1f} ms  ratio {same:.2f}x {goal(same, 1.2)}; ours also checks the "
              "created container against the policy (the engine's inspect from create, no extra round trip)")

        with DockerSandbox(policy, run_id=run_id, image=image) as sb:
            ct = sb.container
            for _ in range(5):  # warm-up of both paths
                sb.exec(["true"], timeout=60)
                ct.exec_run(["true"], user=policy.user, workdir=sb.workdir, environment={}, stdin=False, tty=False)
            w_ours, w_sdk = [], []
            for _ in range(a.warm_reps):
                t0 = time.perf_counter()
                r = sb.exec(["true"], timeout=60)
                w_ours.append(time.perf_counter() - t0)
                assert r.ok, r.summary()
                t0 = time.perf_counter()
                er = ct.exec_run(["true"], user=policy.user, workdir=sb.workdir, environment={}, stdin=False,
                                 tty=False)
                w_sdk.append(time.perf_counter() - t0)
                assert er.exit_code == 0, er
            ratio = med(w_ours) / med(w_sdk)
            print(f"warm exec, same container ({a.warm_reps} each): ours {med(w_ours) * 1000:.2f} ms  "
                  f"SDK exec_run {med(w_sdk) * 1000:.2f} ms  ratio {ratio:.2f}x {goal(ratio, 1.1)}")

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
            print(f"{a.execs} execs: {took:.1f} s ({took / a.execs * 1000:.1f} ms each); host fds {f}; "
                  f"RSS MiB {[round(x, 1) for x in m]} -> {'flat' if flat else 'GROWING'}")
    finally:
        dk.reap(run_id)  # both sides label their containers and volumes with run_id
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
