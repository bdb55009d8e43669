"""R: resource exhaustion — bounded, classified, host unaffected, no leftovers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.policy import SandboxPolicy

from .conftest import host_pids, rss_bytes  # noqa: E402

pytestmark = pytest.mark.docker
GRACE = 5.0


def _classify(r) -> str:
    if r.timed_out:
        return "timeout"
    if r.oom_killed:
        return "oom"
    return "ok" if r.returncode == 0 else "error"


def _pids_limit_hits(sb) -> int:
    """How often the container's pids cgroup refused a fork (cgroup v1 or v2 file)."""
    r = sb.exec("cat /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events 2>/dev/null; true", timeout=20)
    return sum(int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("max "))


def test_r01_fork_bomb(make, rec):
    with rec.row("R01", "docker", "bounded") as row:
        base = host_pids()
        sb = make(SandboxPolicy(pids_limit=64, mem_limit="512m"))
        hits0 = _pids_limit_hits(sb)
        t0 = time.monotonic()
        r = sb.exec(["bash", "-c", ":(){ :|:& };:; sleep 30"], timeout=5)
        took = time.monotonic() - t0
        hits = _pids_limit_hits(sb) - hits0
        after = sb.exec("ls /proc | grep -c '^[0-9]'", timeout=20)
        n_inside = int(after.stdout.strip() or 99)
        sb.close()
        time.sleep(0.5)
        bounded = took <= 5 + GRACE + 5 and n_inside < 10 and host_pids() <= base + 40 and hits > 0
        row["outcome"] = "bounded" if bounded else f"unbounded took={took:.1f} inside={n_inside} hits={hits}"
        # either the timeout killed it, or the bomb's own shell died of failed forks: both are bounded
        died_of_fork = r.returncode != 0 and ("fork" in r.stderr or "Resource temporarily unavailable" in r.stderr)
        row["classified_right"] = bounded and (r.timed_out or died_of_fork)
        assert bounded and (r.timed_out or died_of_fork), (took, n_inside, hits, r.summary(), r.stderr[-300:])


def test_r02_ram_bomb(make, rec):
    sb = make(SandboxPolicy(mem_limit="256m"))
    with rec.row("R02", "docker", "oom") as row:
        r = sb.exec("python3 -c 'b=[]\nwhile True: b.append(bytearray(16*2**20))'", timeout=60)
        row["outcome"] = _classify(r)
        assert r.oom_killed and not r.timed_out and r.returncode == 137, r.summary()
    with rec.row("R02-literal", "docker", "oom-or-error") as row:
        # bytearray(10**12): the kernel refuses the 1 TB mapping (MemoryError) or the cgroup kills it
        r = sb.exec("python3 -c 'bytearray(10**12)'", timeout=60)
        c = _classify(r)
        row["outcome"] = "oom-or-error" if c in ("oom", "error") else c
        assert c in ("oom", "error") and not r.timed_out, r.summary()
    with rec.row("R02-after", "docker", "ok") as row:
        r = sb.exec("echo alive", timeout=20)  # a sandbox survives an OOM and says so
        row["outcome"] = _classify(r)
        assert r.ok and not r.oom_killed


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r03_cpu_spin(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R03", backend, "timeout") as row:
        t0 = time.monotonic()
        r = sb.exec(["python3", "-c", "while True: pass"], timeout=2)
        took = time.monotonic() - t0
        row["outcome"] = _classify(r)
        assert r.timed_out and took <= 2 + 5 + 10, (took, r.summary())
    if backend == "local":
        sb.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r04_sigterm_ignored(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R04", backend, "timeout") as row:
        t0 = time.monotonic()
        r = sb.exec("trap '' TERM; sleep 999999", timeout=1.5)
        took = time.monotonic() - t0
        row["outcome"] = _classify(r)
        assert r.timed_out and took < 1.5 + GRACE + 2, took
    if backend == "local":
        sb.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r05_orphans(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R05", backend, "timeout") as row:
        r = sb.exec("nohup sleep 8801 >/dev/null 2>&1 & setsid sleep 8802 & (sleep 8803 &) ; "
                    "sh -c 'sh -c \"sleep 8804\" &' ; sleep 8805", timeout=1.5)
        time.sleep(0.3)
        chk = sb.exec("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep 'sleep 880[1-5]$' | "
                      "grep -v grep | wc -l", timeout=20)
        survivors = int(chk.stdout.strip() or -1)
        row["outcome"] = _classify(r) if survivors == 0 else f"{survivors} survivors"
        row["escaped"] = survivors != 0
        assert r.timed_out and survivors == 0, chk.stdout
    if backend == "local":
        sb.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r06_fast_self_sigterm(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R06", backend, "error") as row:
        r = sb.exec("kill -TERM $$", timeout=30)
        row["outcome"] = _classify(r)
        assert not r.timed_out and r.returncode == 143 and r.duration_s < 5
    if backend == "local":
        sb.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r07_hang_without_output(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R07-sleep", backend, "timeout") as row:
        r = sb.exec("sleep 999999", timeout=1)
        row["outcome"] = _classify(r)
        assert r.timed_out
    with rec.row("R07-read", backend, "error") as row:  # stdin closed: EOF at once, no hang
        r = sb.exec("read x", timeout=20)
        row["outcome"] = _classify(r)
        assert not r.timed_out and r.returncode == 1 and r.duration_s < 10
    with rec.row("R07-input", backend, "error") as row:
        r = sb.exec(["python3", "-c", "input()"], timeout=20)
        row["outcome"] = _classify(r)
        assert not r.timed_out and "EOFError" in r.stderr
    if backend == "local":
        sb.close()


def test_r08_disk_fill(make, rec):
    with rec.row("R08", "docker", "error") as row:
        free0 = os.statvfs("/").f_bavail * os.statvfs("/").f_frsize
        sb = make(SandboxPolicy(workspace_size="64m"))
        r = sb.exec("dd if=/dev/zero of=/workspace/big bs=1M count=1000", timeout=60)
        size = sb.exec("stat -c %s /workspace/big", timeout=10).stdout.strip()
        free1 = os.statvfs("/").f_bavail * os.statvfs("/").f_frsize
        row["outcome"] = _classify(r)
        assert r.returncode != 0 and "No space left" in r.stderr, r.stderr
        assert int(size) <= 64 << 20
        assert abs(free0 - free1) < 200 << 20, (free0 - free1)


def test_r09_inode_exhaustion(make, rec, run_id):
    from sandbox import docker as dk

    with rec.row("R09", "docker", "error") as row:
        sb = make(SandboxPolicy(workspace_inodes=2000, tmp_inodes=2000))
        r = sb.exec("cd /workspace && i=0; while [ $i -lt 5000 ]; do : > f$i || exit 9; i=$((i+1)); done", timeout=120)
        n = int(sb.exec("ls /workspace | wc -l", timeout=20).stdout.strip())
        r2 = sb.exec("cd /tmp && i=0; while [ $i -lt 5000 ]; do : > f$i || exit 9; i=$((i+1)); done", timeout=120)
        vol = sb.name
        sb.close()
        gone = all(v.name != vol for v in dk.list_ours(run_id)[1])
        row["outcome"] = _classify(r)
        assert r.returncode != 0 and "No space left" in r.stderr, r.summary()
        assert r2.returncode != 0 and "No space left" in r2.stderr, r2.summary()
        assert n <= 2000 and gone, (n, gone)


def test_r10_tmp_and_shm_fill(make, rec):
    with rec.row("R10", "docker", "error") as row:
        sb = make(SandboxPolicy(tmp_size="32m", shm_size="32m"))
        r1 = sb.exec("dd if=/dev/zero of=/tmp/fill bs=1M count=200", timeout=60)
        r2 = sb.exec("dd if=/dev/zero of=/dev/shm/fill bs=1M count=200", timeout=60)
        sizes = sb.exec("stat -c %s /tmp/fill /dev/shm/fill", timeout=10).stdout.split()
        row["outcome"] = "error" if r1.returncode and r2.returncode else "ok"
        assert r1.returncode != 0 and r2.returncode != 0
        assert all(int(s) <= 32 << 20 for s in sizes), sizes


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r11_output_flood(backend, make, rec, tmp_path):
    pol = SandboxPolicy(log_cap_bytes=1 << 20)
    sb = make(pol) if backend == "docker" else _local(tmp_path, pol)
    with rec.row("R11", backend, "ok") as row:
        rss0 = rss_bytes()
        r = sb.exec("yes | head -c 200000000; yes err | head -c 20000000 1>&2", timeout=120)
        rss1 = rss_bytes()
        row["outcome"] = _classify(r)
        seen = len(r.stdout.encode()) + len(r.stderr.encode())
        assert r.truncated and seen <= 16 * 1024, seen
        if backend == "docker":  # the capture counts every byte it dropped (local does not count)
            assert (r.extra["stdout_bytes"], r.extra["stderr_bytes"]) == (200_000_000, 20_000_000), r.extra
        assert rss1 - rss0 < 64 << 20, (rss1 - rss0)
        assert r.log_path and Path(r.log_path).stat().st_size <= (1 << 20) + 200
    if backend == "local":
        sb.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_r12_binary_output(backend, make, rec, tmp_path):
    sb = make() if backend == "docker" else _local(tmp_path)
    with rec.row("R12", backend, "ok") as row:
        r = sb.exec("head -c 100000 /dev/urandom; i=0; while [ $i -lt 2000 ]; do printf 'x\\r\\033[2K\\033[31m%d\\033[0m' $i; i=$((i+1)); done;"
                    "printf '\\377\\376\\000' >&2", timeout=60)
        row["outcome"] = _classify(r)
        assert r.ok and isinstance(r.stdout, str) and "\ufffd" in r.stdout and "\ufffd" in r.stderr
    if backend == "local":
        sb.close()


_VRAM_FREE = "import torch; f, t = torch.cuda.mem_get_info(); print(f, t)"
_VRAM_HOG = (
    "import torch\n"
    "blocks = []\n"
    "while True:\n"
    "    try: blocks.append(torch.empty(1 << 28, dtype=torch.uint8, device='cuda'))\n"
    "    except RuntimeError: break\n"
    "x = torch.randn(4096, 4096, device='cuda')\n"
    "while True: x = x @ x; x = x / x.norm()\n"
)


@pytest.mark.gpu
def test_r13_gpu_hog(make, rec):
    """All VRAM taken and kernels spinning: killed at the timeout, and the next job sees the VRAM free."""
    from sandbox import docker as dk

    if not dk.gpu_available():
        rec.skipped("R13", "docker", "no GPU runtime in this Docker engine (R13 runs only with a GPU)")
    sb = make(gpu=True)
    probe = sb.exec(["python3", "-c", _VRAM_FREE], timeout=120)
    if not probe.ok:
        rec.skipped("R13", "docker", f"the sandbox image has no CUDA torch: {probe.stderr[-200:]}")
    free0, total = map(int, probe.stdout.split())
    with rec.row("R13", "docker", "timeout") as row:
        t0 = time.monotonic()
        r = sb.exec(["python3", "-c", _VRAM_HOG], timeout=20)
        took = time.monotonic() - t0
        after = sb.exec(["python3", "-c", _VRAM_FREE], timeout=120)
        free1 = int(after.stdout.split()[0])
        row["outcome"] = _classify(r)
        assert r.timed_out and took <= 20 + GRACE + 10, (took, r.summary())
        assert free1 >= free0 - (512 << 20), (free0, free1, total)  # the killed job's VRAM came back


@pytest.mark.slow
def test_r14_lifetime_after_host_crash(image, run_id, rec):
    """A host process that creates a sandbox and is SIGKILLed: the container is gone after max_lifetime."""
    from sandbox import docker as dk

    with rec.row("R14", "docker", "stopped") as row:
        code = (
            "import sys,time\n"
            "from sandbox.docker import DockerSandbox\nfrom sandbox.policy import SandboxPolicy\n"
            f"sb=DockerSandbox(SandboxPolicy(max_lifetime_s=10), run_id={run_id!r}, image={image!r}, role='setup')\n"
            "print(sb.container.id, flush=True)\ntime.sleep(1000)\n"
        )
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=str(Path(__file__).resolve().parents[3]),
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
        cid = p.stdout.readline().strip()
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        c = dk.client().containers.get(cid)
        name, status = c.name, c.status
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                c.reload()
                status = c.status
            except dk.NotFound:  # another process's start-up reap already took the stopped container
                status = "removed"
            if status != "running":
                break
            time.sleep(1)
        row["outcome"] = "stopped" if status != "running" else "running"
        assert row["outcome"] == "stopped", status
        dk.reap()  # what the next start-up does: stopped containers and their volumes go
        names = [x.name for part in dk.list_ours(run_id) for x in part]
        row["lost"] = False
        assert name not in names, names


def _local(tmp_path, policy=None):
    from sandbox.local import LocalSandbox

    from .conftest import REC

    return LocalSandbox(policy, run_id="hostile-local", log_dir=REC.log_dir, base_dir=tmp_path)
