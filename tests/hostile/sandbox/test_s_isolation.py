"""S: isolation and escape. Traffic only to loopback / namespaces we create."""
from __future__ import annotations

import socket
import threading

import pytest

from sandbox.base import RuntimeUnavailable
from sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.docker


def test_s01_egress(shared, rec):
    with rec.row("S01", "docker", "blocked") as row:
        # a listener on the HOST's loopback; inside, 127.0.0.1 is the container's own loopback
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        hits = []
        srv.settimeout(0.2)
        done = threading.Event()

        def accept():
            while not done.is_set():
                try:
                    c, _ = srv.accept()
                    hits.append(c)
                    c.close()
                except OSError:
                    pass

        t = threading.Thread(target=accept)
        t.start()
        r = shared.exec(
            "cat /proc/net/dev; echo ---; cat /etc/resolv.conf; echo ---;"
            f"python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1',{port}),timeout=2); print('CONNECTED')\n"
            "except OSError as e: print('refused', e)\"; "
            "python3 -c \"import socket\ntry:\n print('RESOLVED', socket.getaddrinfo('repro-canary.invalid',80))\n"
            "except OSError as e: print('noresolve', e)\"",
            timeout=60,
        )
        done.set()
        t.join()
        srv.close()
        ifaces = [l.split(":")[0].strip() for l in r.stdout.split("---")[0].splitlines() if ":" in l]
        resolv = r.stdout.split("---")[1]
        nameservers = [l.split()[1] for l in resolv.splitlines() if l.startswith("nameserver")]
        blocked = (ifaces == ["lo"] and "CONNECTED" not in r.stdout and not hits and "RESOLVED" not in r.stdout
                   and all(ns.startswith("127.") for ns in nameservers))
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = not blocked
        assert blocked, (ifaces, nameservers, r.stdout, r.stderr)


def test_s02_no_route_no_host_paths(shared, rec):
    with rec.row("S02", "docker", "blocked") as row:
        r = shared.exec("tail -n +2 /proc/net/route | wc -l; tail -n +2 /proc/net/ipv6_route 2>/dev/null | grep -vc ' lo$' ;"
                        "for p in /var/run/docker.sock /run/docker.sock /work /root/.pyenv /var/lib/docker /etc/shadow; do"
                        " [ -e $p ] && echo PRESENT $p; done; true", timeout=30)
        lines = r.stdout.split()
        blocked = lines[0] == "0" and "PRESENT" not in r.stdout
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = not blocked
        assert blocked, r.stdout


def test_s03_docker_socket(shared, rec):
    with rec.row("S03", "docker", "blocked") as row:
        r = shared.exec("[ -e /var/run/docker.sock ] || [ -e /run/docker.sock ] && echo SOCKET;"
                        "command -v docker >/dev/null && echo CLI; echo ---;"
                        "find / -xdev -name 'docker.sock*' 2>/dev/null | head", timeout=120)
        head, _, found = r.stdout.partition("---")
        blocked = "SOCKET" not in head and "CLI" not in head and not found.strip()
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = not blocked
        assert blocked, r.stdout


def test_s04_privilege(shared, rec):
    with rec.row("S04", "docker", "blocked") as row:
        script = r"""
mount -t tmpfs none /tmp/m 2>/dev/null && echo MOUNTED
mkdir -p /tmp/m
mount -t tmpfs none /tmp/m 2>/dev/null && echo MOUNTED
unshare -Ur true 2>/dev/null && echo UNSHARED
unshare -m true 2>/dev/null && echo UNSHARED_M
modprobe dummy 2>/dev/null && echo MODPROBED
echo evil > /proc/sys/kernel/hostname 2>/dev/null && echo SYSCTL
python3 -c "import ctypes;l=ctypes.CDLL(None);print('PTRACE' if l.ptrace(16,1,0,0)==0 else 'noptrace')"
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status
find / -xdev -perm -4000 -type f 2>/dev/null | sed 's/^/SETUID /'
true
"""
        r = shared.exec(script, timeout=120)
        out = r.stdout
        caps_zero = all(f"{k}:\t0000000000000000" in out for k in ("CapEff", "CapPrm", "CapBnd"))
        nnp = "NoNewPrivs:\t1" in out
        bad = [w for w in ("MOUNTED", "UNSHARED", "MODPROBED", "SYSCTL", "PTRACE", "SETUID") if w in out.replace("noptrace", "")]
        blocked = caps_zero and nnp and not bad
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = not blocked
        assert blocked, out


def test_s05_readonly_root(shared, rec):
    with rec.row("S05", "docker", "blocked") as row:
        r = shared.exec("for p in /usr/x /etc/passwd /root/x /opt/python/x /x; do (echo 1 >> $p) 2>/dev/null && echo WROTE $p; done;"
                        "for p in /workspace/ok /tmp/ok /dev/shm/ok; do echo 1 > $p && echo OK $p; done", timeout=30)
        blocked = "WROTE" not in r.stdout and r.stdout.count("OK ") == 3
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = "WROTE" in r.stdout
        assert blocked, r.stdout + r.stderr


def test_s06_user(shared, rec):
    from sandbox import docker as dk

    with rec.row("S06", "docker", "blocked") as row:
        r = shared.exec("id -u; id -g", timeout=30)
        top = dk.client().api.top(shared.container.id, ps_args="-eo uid,pid,args")
        host_uids = {int(p[0]) for p in top["Processes"]}
        blocked = r.stdout.split() == ["1000", "1000"] and 0 not in host_uids
        row["outcome"] = "blocked" if blocked else "open"
        row["escaped"] = not blocked
        assert blocked, (r.stdout, top)


def test_s07_roles_created(make, rec):
    """Create one sandbox per role so the final drift check covers agent, reproduce and setup."""
    for role in ("agent", "reproduce", "setup"):
        sb = make(role=role)
        assert sb.inspect()["Config"]["Labels"]["repro.role"] == role


def test_s08_strict_runtime_fails_closed(image, run_id, rec):
    from sandbox import docker as dk
    from sandbox.docker import DockerSandbox

    with rec.row("S08", "docker", "refused") as row:
        has_runsc = "runsc" in dk.runtimes()
        pol = SandboxPolicy(strict_runtime=True) if not has_runsc else SandboxPolicy(
            runtime="runsc-absent-for-test", strict_runtime=True)
        before = len(dk.list_ours(run_id)[0])
        try:
            DockerSandbox(pol, run_id=run_id, image=image).close()
            row["outcome"] = "started"
        except RuntimeUnavailable as e:
            row["outcome"] = "refused"
            assert "runsc" in str(e) or "runtime" in str(e)
        assert len(dk.list_ours(run_id)[0]) == before, "a container was left/created"
        row["escaped"] = row["outcome"] != "refused"
        assert row["outcome"] == "refused"


def test_s09_gvisor_identity(image, run_id, rec):
    from sandbox import docker as dk
    from sandbox.docker import DockerSandbox

    if "runsc" not in dk.runtimes():
        rec.skipped("S09", "docker", "runsc (gVisor) is not configured in this Docker engine")
    with rec.row("S09", "docker", "gvisor") as row:
        with DockerSandbox(SandboxPolicy(strict_runtime=True), run_id=run_id, image=image) as sb:
            rec.created.append(sb.inspect())
            rec.policies.append((sb.policy, sb.runtime))
            r = sb.exec("dmesg 2>/dev/null | head -3; uname -a", timeout=30)
        row["outcome"] = "gvisor" if "gVisor" in r.stdout or "Starting gVisor" in r.stdout else "other"
        assert row["outcome"] == "gvisor", r.stdout
