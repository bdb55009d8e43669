"""Local backend, for trusted development use only.

Commands run on the host in a temporary working directory, each in its own session and
process group. The environment is an explicit allowlist (PATH, LANG, HOME=workdir, the
asset locations, Hugging Face offline switches, plus a checked ``env``) — the host
environment is never inherited. On timeout the process group is SIGKILLed, and so is every
process still carrying this sandbox's marker variable (which catches ``setsid``'d and
double-forked children).

It is NOT an isolation boundary: no network, memory or filesystem isolation.
``trust="untrusted"`` is refused unless bubblewrap (``bwrap``) is installed, in which case
commands run inside a bwrap jail (no network, read-only system dirs, only the workdir
writable, no home directory).
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Literal

from sandbox import archive
from sandbox.base import ExecResult, OutputCallback, OutputLimitExceeded, PolicyViolation, SandboxUnavailable
from sandbox.output import OutputCapture
from sandbox.paths import resolve_inside
from sandbox.policy import SandboxPolicy, check_env, check_run_id

TIMEOUT_RC = 124
MARKER_VAR = "REPRO_SANDBOX_ID"


def _system_path() -> str:
    dirs = [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return ":".join(seen)


class LocalSandbox:
    """Runs commands on the host in a temp dir (trusted use). Implements ``Sandbox``."""

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        run_id: str,
        trust: Literal["trusted", "untrusted"] = "trusted",
        log_dir: Path | None = None,
        base_dir: Path | None = None,
        assets_env: bool = True,
        path: Path | None = None,
    ):
        self.policy = policy or SandboxPolicy()
        self.run_id = check_run_id(run_id)
        self.trust = trust
        if trust not in ("trusted", "untrusted"):
            raise PolicyViolation(f"trust must be 'trusted' or 'untrusted': {trust!r}")
        self.bwrap = shutil.which("bwrap")
        if trust == "untrusted" and not self.bwrap:
            raise PolicyViolation(
                "LocalSandbox(trust='untrusted') needs bubblewrap (apt-get install bubblewrap); "
                "use the docker backend for untrusted code"
            )
        if path is not None:  # a fixed workdir that outlives this object (kept on close)
            self._dir = Path(path)
            self._dir.mkdir(parents=True, exist_ok=True)
        else:
            self._dir = Path(tempfile.mkdtemp(prefix=f"repro-{self.run_id}-", dir=base_dir))
        self._keep_dir = path is not None
        os.chmod(self._dir, 0o700)
        self.workdir = str(self._dir.resolve())
        self._home = self._dir / ".home"  # hidden tmp/home so HOME != a real home
        self.log_dir = Path(log_dir) if log_dir else None
        self.marker = uuid.uuid4().hex
        self._closed = False
        self._exec_n = 0
        self._assets_env: dict[str, str] = {}
        if assets_env:
            try:
                from sandbox.assets import host_assets

                self._assets_env = host_assets().env()
            except (FileNotFoundError, OSError):
                self._assets_env = {}

    # --- environment ------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """The allowlist. Deliberately built from constants, never from ``os.environ``."""
        tmp = str(self._home)
        env = {
            "PATH": _system_path(),
            "LANG": "C.UTF-8",
            "HOME": self.workdir,
            "TMPDIR": tmp,
            "MPLCONFIGDIR": tmp,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            MARKER_VAR: self.marker,
        }
        env.update(self._assets_env)
        if self.policy.asset_mount:  # the broker's cache in place (trusted use: read-only only under bwrap)
            from sandbox.broker import sandbox_env

            env.update(sandbox_env(self.policy.asset_mount, tmp=tmp))
        return env

    # --- exec -------------------------------------------------------------------------------
    def _argv(self, cmd: list[str] | str, cwd: str) -> list[str]:
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise PolicyViolation("empty command")
        if self.trust == "untrusted":
            ro = [d for d in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc/alternatives", "/etc/ssl")
                  if os.path.exists(d)]
            extra_ro = {sys.base_prefix, sys.prefix, *self._assets_env.values(), self.policy.asset_mount or ""}
            for v in list(self._assets_env.values()):
                p = Path(v)
                if p.exists():
                    for child in p.iterdir():
                        extra_ro.add(str(child.resolve()))
            # own user/pid/net/ipc/uts namespaces; inside, the policy's non-root uid (as in Docker)
            jail = [self.bwrap, "--die-with-parent", "--unshare-all", "--unshare-user", "--uid", str(self.policy.uid),
                    "--gid", str(self.policy.gid), "--new-session", "--cap-drop", "ALL",
                    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
            for d in ro + sorted(e for e in extra_ro if e and os.path.exists(e)):
                jail += ["--ro-bind", d, d]
            jail += ["--bind", self.workdir, self.workdir, "--chdir", cwd, "--"]
            return jail + argv
        return argv

    def exec(
        self,
        cmd: list[str] | str,
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        if self._closed:
            raise SandboxUnavailable("sandbox is closed")
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        user_env = check_env(env)
        if MARKER_VAR in user_env:
            raise PolicyViolation(f"{MARKER_VAR} is reserved")
        full_env = self.base_env()
        full_env.update(user_env)
        wd = resolve_inside(cwd, self.workdir) if cwd else self.workdir
        self._home.mkdir(exist_ok=True)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        self._exec_n += 1
        log_path = self.log_dir / f"local-{self.run_id}-exec-{self._exec_n:04d}.log" if self.log_dir else None
        cap = OutputCapture(self.policy.output_cap_bytes, log_path, self.policy.log_cap_bytes, on_output)
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                self._argv(cmd, wd), cwd=wd, env=full_env,
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
            )
        except FileNotFoundError as e:
            cap.close()
            return ExecResult(returncode=127, stderr=f"{e}\n", duration_s=time.monotonic() - t0)
        timed_out = False
        try:
            timed_out = self._pump(proc, data, cap, t0 + timeout)
        finally:
            cap.close()
            if timed_out:
                self._kill_tree(proc)
            try:
                rc = proc.wait(timeout=max(self.policy.kill_grace_s, 1.0))
            except subprocess.TimeoutExpired:
                self._kill_tree(proc)
                rc = proc.wait()
        duration = time.monotonic() - t0
        oom = rc == -signal.SIGKILL and not timed_out and self._recent_oom()
        return ExecResult(
            returncode=TIMEOUT_RC if timed_out else (128 - rc if rc < 0 else rc),
            stdout=cap.stdout.text(),
            stderr=cap.stderr.text(),
            truncated=cap.truncated,
            timed_out=timed_out,
            oom_killed=oom,
            duration_s=duration,
            log_path=cap.log_path,
            extra={"raw_returncode": rc, "backend": "local", "trust": self.trust, **cap.extra},
        )

    def _pump(self, proc: subprocess.Popen, data: bytes | None, cap: OutputCapture, deadline: float) -> bool:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, 2)
        if data is not None:
            import threading

            def feed() -> None:
                try:
                    proc.stdin.write(data)
                    proc.stdin.close()
                except (BrokenPipeError, OSError, ValueError):
                    pass

            threading.Thread(target=feed, daemon=True).start()
        open_streams = 2
        exited_at: float | None = None
        try:
            while open_streams:
                now = time.monotonic()
                if now >= deadline:
                    return True
                if proc.poll() is not None:
                    # main process gone; a background child may still hold the pipes
                    exited_at = exited_at or now
                    if now - exited_at > 0.2:
                        break
                for key, _ in sel.select(timeout=min(0.1, max(0.0, deadline - now))):
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    cap.feed(key.data, chunk)
            return False
        finally:
            sel.close()
            for f in (proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass

    def _kill_tree(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._kill_marked()

    def _kill_marked(self) -> int:
        """SIGKILL every process whose environment carries this sandbox's marker, and wait (up to the
        kill grace) until none is left: a SIGKILLed process lives on until the kernel has torn it
        down, and on a busy machine that outlasts a fixed number of passes."""
        needle = f"{MARKER_VAR}={self.marker}".encode()
        me = os.getpid()
        killed: set[int] = set()
        deadline = time.monotonic() + max(self.policy.kill_grace_s, 1.0)
        while True:
            found = 0
            for pid_s in os.listdir("/proc"):
                if not pid_s.isdigit() or int(pid_s) == me:
                    continue
                try:  # a zombie's environment reads empty: only processes still alive match
                    with open(f"/proc/{pid_s}/environ", "rb") as f:
                        env = f.read()
                except OSError:
                    continue
                if needle in env.split(b"\0"):
                    found += 1
                    try:
                        os.kill(int(pid_s), signal.SIGKILL)
                        killed.add(int(pid_s))
                    except (ProcessLookupError, PermissionError):
                        pass
            if not found or time.monotonic() > deadline:
                return len(killed)
            time.sleep(0.05)

    def _recent_oom(self) -> bool:
        return False  # the host kernel log is not ours to read; local has no memory cgroup

    # --- files ------------------------------------------------------------------------------
    def _host_path(self, path: str, *, must_exist: bool = False) -> Path:
        p = resolve_inside(path, self.workdir)
        host = Path(p)
        real = os.path.realpath(host)
        if not (real == self.workdir or real.startswith(self.workdir + os.sep)):
            raise PolicyViolation(f"path {path!r} resolves outside the workdir (symlink)")
        if must_exist and not host.exists():
            raise FileNotFoundError(path)
        return host

    def write_file(self, path: str, data: str | bytes) -> None:
        host = self._host_path(path)
        if str(host) == self.workdir:
            raise PolicyViolation("cannot write over the workdir itself")
        host.parent.mkdir(parents=True, exist_ok=True)
        self._host_path(str(host.parent))  # re-check after mkdir
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)

    def read_file(self, path: str, max_bytes: int = 1 << 20) -> bytes:
        host = self._host_path(path, must_exist=True)
        if host.is_dir():
            raise IsADirectoryError(path)
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            import stat as _stat

            if not _stat.S_ISREG(st.st_mode):
                raise PolicyViolation(f"not a regular file: {path!r}")
            if st.st_size > max_bytes:
                raise OutputLimitExceeded(f"{path} is {st.st_size} bytes, more than max_bytes={max_bytes}")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise OutputLimitExceeded(f"{path} is more than max_bytes={max_bytes}")
        return data

    def copy_in(self, src: Path, dest: str | None = None) -> None:
        """A directory's contents are mirrored at ``dest`` (default: the workdir); a file lands
        at ``dest/<name>``."""
        src = Path(src)
        if not src.exists():
            raise FileNotFoundError(src)
        d = self._host_path(dest or self.workdir)
        with tempfile.SpooledTemporaryFile(max_size=32 << 20) as tmp:
            archive.pack_path(src, "" if src.is_dir() else src.name, tmp)
            tmp.seek(0)
            archive.safe_extract(tmp, d, max_bytes=1 << 62, max_files=10**9, merge=True)

    def copy_out(self, src: str, dest: Path, max_bytes: int = 256 << 20) -> None:
        host = self._host_path(src, must_exist=True)
        with tempfile.SpooledTemporaryFile(max_size=32 << 20) as tmp:
            archive.pack_path(host, host.name or "workspace", tmp, max_bytes=max_bytes,
                              max_files=self.policy.copy_max_files, outside_links="skip")
            tmp.seek(0)
            archive.safe_extract(tmp, Path(dest), max_bytes=max_bytes, max_files=self.policy.copy_max_files)

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._kill_marked()
        if not self._keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "LocalSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
