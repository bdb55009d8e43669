"""One behaviour suite for every sandbox backend (inspect_ai style).

``CHECKS`` lists the checks; each takes a ``Harness`` (the backend name, a shared sandbox and
a factory for sandboxes with a custom policy) and raises ``AssertionError`` on a failure.
Known exceptions are declared per backend in ``Check.exceptions`` (backend -> reason), so a
backend that cannot do something says so here, in one place, instead of silently passing.

Run by ``tests/integration/sandbox/test_conformance.py`` (parametrised by backend) and
usable from ``repro sandbox selftest``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandbox.base import ExecResult, OutputLimitExceeded, PolicyViolation, Sandbox, SandboxUnavailable
from sandbox.policy import SandboxPolicy

SCRIPTED = "FakeSandbox's exec is scripted: it runs nothing"
NO_CGROUP = "the local backend has no memory cgroup: an OOM shows as SIGKILL/MemoryError, unclassified"


@dataclass
class Harness:
    backend: str
    make: Callable[..., Sandbox]
    """make(policy=None, log_dir=None) -> a fresh sandbox (closed by the harness owner)."""
    shared: Sandbox


@dataclass
class Check:
    name: str
    fn: Callable[[Harness], None]
    exceptions: dict[str, str] = field(default_factory=dict)
    slow: bool = False


CHECKS: list[Check] = []


def check(name: str, *, exceptions: dict[str, str] | None = None, slow: bool = False):
    def deco(fn: Callable[[Harness], None]) -> Callable[[Harness], None]:
        CHECKS.append(Check(name, fn, exceptions or {}, slow))
        return fn

    return deco


def _ok(r: ExecResult, what: str) -> None:
    assert r.returncode == 0 and not r.timed_out, f"{what}: {r.summary()}\nstdout={r.stdout!r}\nstderr={r.stderr!r}"


# --- exec --------------------------------------------------------------------------------
@check("exec_shell_string", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("echo hello; echo oops >&2", timeout=30)
    _ok(r, "echo")
    assert r.stdout == "hello\n" and r.stderr == "oops\n", (r.stdout, r.stderr)
    assert not r.truncated and r.duration_s > 0


@check("exec_argv_list_no_shell", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec(["printf", "%s|", "a b", "$HOME", ";rm"], timeout=30)
    _ok(r, "printf")
    assert r.stdout == "a b|$HOME|;rm|", r.stdout


@check("exec_nonzero_exit_is_not_an_error", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("exit 3", timeout=30)
    assert r.returncode == 3 and not r.timed_out and not r.oom_killed and not r.ok


@check("exec_timeout_kills_whole_tree", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    t0 = time.monotonic()
    r = h.shared.exec("sleep 9871 & (setsid sleep 9872 &) ; nohup sleep 9873 >/dev/null 2>&1 & sleep 9874", timeout=1.5)
    took = time.monotonic() - t0
    assert r.timed_out and r.returncode == 124 and not r.oom_killed, r.summary()
    assert took < 1.5 + 5 + 3, took
    time.sleep(0.3)
    left = h.shared.exec(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c 'sleep 987[1-4]' || true",
        timeout=30,
    )
    assert left.stdout.strip() in ("0", "1"), f"survivors: {left.stdout!r}"  # 1 = the grep's own shell line


@check("exec_self_sigterm_is_not_a_timeout", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("kill -TERM $$", timeout=30)
    assert not r.timed_out and r.returncode == 143, r.summary()


@check("exec_stdin_closed_by_default", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("read x; echo rc=$?", timeout=20)
    assert not r.timed_out and "rc=1" in r.stdout, r.summary()


@check("exec_stdin_given", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec(["cat"], timeout=20, stdin="line1\nlïne2\n")
    _ok(r, "cat")
    assert r.stdout == "line1\nlïne2\n"


@check("exec_env_passed_and_host_env_not_inherited", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    os.environ["REPRO_CONFORMANCE_HOST_ONLY"] = "host-value-xyz"
    try:
        r = h.shared.exec("env", timeout=20, env={"FOO": "bar baz"})
    finally:
        os.environ.pop("REPRO_CONFORMANCE_HOST_ONLY", None)
    _ok(r, "env")
    assert "FOO=bar baz" in r.stdout
    assert "host-value-xyz" not in r.stdout and "REPRO_CONFORMANCE_HOST_ONLY" not in r.stdout
    assert "REPRO_MODELS=" in r.stdout and "HF_HUB_OFFLINE=1" in r.stdout


@check("exec_secret_env_refused")
def _(h: Harness) -> None:
    for env in ({"OPENAI_API_KEY": "x"}, {"HF_TOKEN": "x"}, {"SOMETHING": "sk-abc123"}, {"X": "hf_abcdef"},
                {"DB_PASSWORD": "p"}):
        try:
            h.shared.exec("true", timeout=10, env=env)
        except PolicyViolation:
            continue
        raise AssertionError(f"env {env} was accepted")


@check("exec_cwd_inside_only", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    h.shared.write_file("sub dir/keep", "")
    r = h.shared.exec("pwd", timeout=20, cwd="sub dir")
    _ok(r, "pwd")
    assert r.stdout.strip() == f"{h.shared.workdir}/sub dir"
    for bad in ("/etc", "../..", "/"):
        try:
            h.shared.exec("pwd", timeout=10, cwd=bad)
        except PolicyViolation:
            continue
        raise AssertionError(f"cwd {bad!r} accepted")


@check("exec_output_head_and_tail_capped", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    pol = SandboxPolicy(output_cap_bytes=1024)
    with tempfile.TemporaryDirectory() as logs:
        sb = h.make(policy=pol, log_dir=Path(logs))
        try:
            r = sb.exec("echo FIRSTLINE; i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo LASTLINE",
                        timeout=60)
        finally:
            sb.close()
        _ok(r, "flood")
        assert r.truncated
        assert r.stdout.startswith("FIRSTLINE") and r.stdout.rstrip().endswith("LASTLINE")
        assert len(r.stdout.encode()) <= 1024, len(r.stdout.encode())
        assert r.log_path and Path(r.log_path).is_file()
        full = Path(r.log_path).read_bytes()
        assert b"line 12345\n" in full and full.endswith(b"LASTLINE\n")


@check("exec_streams_output_as_it_comes", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    """on_output gets each chunk while the command runs (the first line long before it ends), on the
    right stream, after the chunk is in the exec's log file."""
    with tempfile.TemporaryDirectory() as logs:
        sb = h.make(log_dir=Path(logs))
        seen: list[tuple[float, int, bytes, bytes]] = []  # (when, stream, chunk, the log files then)

        def on_output(stream: int, chunk: bytes) -> None:
            seen.append((time.monotonic(), stream, chunk, b"".join(p.read_bytes() for p in Path(logs).glob("*.log"))))

        try:
            r = sb.exec("echo first; sleep 1.5; echo second >&2; sleep 1.5; echo third", timeout=60, on_output=on_output)
            ended = time.monotonic()
        finally:
            sb.close()
    _ok(r, "streamed")
    assert r.stdout == "first\nthird\n" and r.stderr == "second\n", (r.stdout, r.stderr)
    assert b"".join(c for _, s, c, _ in seen if s == 1) == b"first\nthird\n"
    assert b"".join(c for _, s, c, _ in seen if s == 2) == b"second\n"
    first = next(x for x in seen if b"first" in x[2])
    assert ended - first[0] > 2.0, f"the first line came {ended - first[0]:.2f}s before the end: not streamed"
    assert first[1] == 1 and b"first" in first[3], "the chunk was handed on before it was in the log file"
    second = next(x for x in seen if b"second" in x[2])
    assert second[1] == 2 and ended - second[0] > 0.8, ended - second[0]


@check("exec_log_written_as_it_comes", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    """The exec's log file holds each line while the command still runs (not only once it ended)."""
    import threading

    with tempfile.TemporaryDirectory() as logs:
        sb = h.make(log_dir=Path(logs))
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                if any(b"first" in p.read_bytes() for p in Path(logs).glob("*.log")):
                    seen.setdefault("first", time.monotonic())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            r = sb.exec("echo first; sleep 2; echo done", timeout=60)
        finally:
            ended = time.monotonic()
            stop.set()
            watcher.join()
            sb.close()
    _ok(r, "logged")
    assert "first" in seen, "the log file never held the first line while the command ran"
    assert ended - seen["first"] > 1.0, f"the first line reached the log {ended - seen['first']:.2f}s before the end"


@check("exec_invalid_utf8_replaced", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("printf 'a\\377\\376b\\r\\033[31mred\\033[0m\\n'", timeout=20)
    _ok(r, "printf")
    assert r.stdout.startswith("a\ufffd\ufffdb\r") and "red" in r.stdout


@check("exec_oom_classified", exceptions={"fake": SCRIPTED, "local": NO_CGROUP, "local-bwrap": NO_CGROUP})
def _(h: Harness) -> None:
    sb = h.make(policy=SandboxPolicy(mem_limit="256m"))
    try:
        r = sb.exec("python3 -c 'b=[]\nwhile True: b.append(bytearray(32*2**20))'", timeout=120)
    finally:
        sb.close()
    assert r.oom_killed and not r.timed_out and r.returncode == 137, r.summary()


# --- files -------------------------------------------------------------------------------
@check("file_write_read_roundtrip")
def _(h: Harness) -> None:
    data = bytes(range(256)) * 10
    h.shared.write_file("rt/deep/bin.dat", data)
    assert h.shared.read_file("rt/deep/bin.dat") == data
    h.shared.write_file(f"{h.shared.workdir}/rt/text.txt", "héllo\n")
    assert h.shared.read_file("rt/text.txt") == "héllo\n".encode()


@check("file_read_errors")
def _(h: Harness) -> None:
    try:
        h.shared.read_file("does/not/exist")
        raise AssertionError("missing file read")
    except FileNotFoundError:
        pass
    h.shared.write_file("big.bin", b"x" * 5000)
    try:
        h.shared.read_file("big.bin", max_bytes=4999)
        raise AssertionError("max_bytes ignored")
    except OutputLimitExceeded:
        pass


@check("file_paths_outside_refused")
def _(h: Harness) -> None:
    for bad in ("/etc/passwd", "../../etc/passwd", "/tmp/x", "a/../../x"):
        for op in (lambda p: h.shared.read_file(p), lambda p: h.shared.write_file(p, "x")):
            try:
                op(bad)
            except PolicyViolation:
                continue
            raise AssertionError(f"path {bad!r} accepted")


@check("copy_roundtrip_exact")
def _(h: Harness) -> None:
    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "src"
        (src / "sub dir").mkdir(parents=True)
        files = {
            "empty": b"",
            "sub dir/naïve ünïcode.txt": "ü\n".encode(),
            "new\nline name": b"nl",
            "blob.bin": os.urandom(300_000),
        }
        for name, data in files.items():
            (src / name).write_bytes(data)
        old = time.time() - 3600
        os.utime(src / "blob.bin", (old, old))
        h.shared.copy_in(src, "rt_copy")
        out = Path(td) / "out"
        h.shared.copy_out("rt_copy", out)
        for name, data in files.items():
            got = (out / "rt_copy" / name).read_bytes()
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
        mt = (out / "rt_copy" / "blob.bin").stat().st_mtime
        assert abs(mt - old) < 1.0, (mt, old)


@check("copy_in_file_and_merge")
def _(h: Harness) -> None:
    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "one.txt"
        f.write_text("1")
        h.shared.copy_in(f, "merge")
        d = Path(td) / "d"
        d.mkdir()
        (d / "two.txt").write_text("2")
        h.shared.copy_in(d, "merge")
        assert h.shared.read_file("merge/one.txt") == b"1"
        assert h.shared.read_file("merge/two.txt") == b"2"


@check("copy_out_oversize_leaves_nothing")
def _(h: Harness) -> None:
    h.shared.write_file("over/a.bin", b"a" * 6000)
    h.shared.write_file("over/b.bin", b"b" * 6000)
    with tempfile.TemporaryDirectory() as td:
        dest = Path(td) / "dest"
        try:
            h.shared.copy_out("over", dest, max_bytes=10_000)
            raise AssertionError("max_bytes ignored")
        except OutputLimitExceeded:
            pass
        assert not dest.exists(), list(dest.rglob("*"))


@check("copy_out_symlink_not_followed", exceptions={"fake": SCRIPTED})
def _(h: Harness) -> None:
    r = h.shared.exec("mkdir -p links && ln -sf /etc/passwd links/pw && ln -sf ../links links/loop && echo ok > links/f",
                      timeout=20)
    _ok(r, "ln")
    with tempfile.TemporaryDirectory() as td:
        h.shared.copy_out("links", Path(td))
        pw = Path(td) / "links" / "pw"
        assert not pw.exists() or (pw.is_symlink() and not os.path.isabs(os.readlink(pw))), "absolute link kept"
        assert (Path(td) / "links" / "f").read_text() == "ok\n"
        for p in Path(td).rglob("*"):
            if p.is_symlink():
                assert os.path.realpath(p).startswith(os.path.realpath(td)), p


# --- lifecycle ---------------------------------------------------------------------------
@check("close_idempotent_then_unavailable")
def _(h: Harness) -> None:
    sb = h.make()
    sb.close()
    sb.close()
    try:
        sb.exec("true", timeout=5)
        raise AssertionError("exec after close")
    except SandboxUnavailable:
        pass
