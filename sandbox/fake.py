"""``FakeSandbox``: in-memory sandbox for unit tests (scripted exec results, records commands)."""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from sandbox.base import ExecResult, OutputCallback, OutputLimitExceeded, PolicyViolation, SandboxUnavailable
from sandbox.output import OutputCapture
from sandbox.paths import resolve_inside
from sandbox.policy import SandboxPolicy, check_env

Script = Iterable[ExecResult] | Callable[[list[str] | str], ExecResult] | dict[str, ExecResult] | None


class FakeSandbox:
    """Scripted exec results; files kept in a dict ``path -> (bytes, mtime)``.

    ``results`` may be a list (consumed in order; running out raises ``AssertionError``),
    a callable ``cmd -> ExecResult``, or a dict of substring -> result (first match wins,
    no match -> returncode 0). Every call is recorded in ``commands``. With ``on_output`` the
    result's stdout and then its stderr are handed to the callback before ``exec`` returns.
    """

    def __init__(self, results: Script = None, *, policy: SandboxPolicy | None = None, run_id: str = "fake",
                 workdir: str = "/workspace"):
        self.policy = policy or SandboxPolicy()
        self.run_id = run_id
        self.workdir = workdir
        self.files: dict[str, tuple[bytes, float]] = {}
        self.commands: list[dict] = []
        self.closed = False
        self.close_calls = 0
        self._results = results
        self._queue = list(results) if isinstance(results, (list, tuple)) else None

    def _check(self) -> None:
        if self.closed:
            raise SandboxUnavailable("sandbox is closed")

    def exec(self, cmd, *, timeout: float, cwd: str | None = None, env: dict[str, str] | None = None,
             stdin: str | bytes | None = None, on_output: OutputCallback | None = None) -> ExecResult:
        res = self._result(cmd, timeout=timeout, cwd=cwd, env=env, stdin=stdin)
        if on_output is not None:  # the scripted output, streamed as a backend would: stdout, then stderr
            cap = OutputCapture(1, on_output=on_output)
            cap.feed(1, res.stdout.encode())
            cap.feed(2, res.stderr.encode())
            if cap.extra:
                res = dataclasses.replace(res, extra={**res.extra, **cap.extra})
        return res

    def _result(self, cmd, *, timeout: float, cwd: str | None, env: dict[str, str] | None,
                stdin: str | bytes | None) -> ExecResult:
        self._check()
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        env = check_env(env)
        if cwd:
            resolve_inside(cwd, self.workdir)
        self.commands.append({"cmd": cmd, "timeout": timeout, "cwd": cwd, "env": env, "stdin": stdin})
        if self._queue is not None:
            if not self._queue:
                raise AssertionError(f"FakeSandbox: no scripted result left for {cmd!r}")
            return self._queue.pop(0)
        if callable(self._results):
            return self._results(cmd)
        if isinstance(self._results, dict):
            text = cmd if isinstance(cmd, str) else " ".join(cmd)
            for key, res in self._results.items():
                if key in text:
                    return res
        return ExecResult(returncode=0)

    def write_file(self, path: str, data: str | bytes) -> None:
        self._check()
        p = resolve_inside(path, self.workdir)
        if p == self.workdir:
            raise PolicyViolation("cannot write over the workdir itself")
        self.files[p] = (data.encode() if isinstance(data, str) else bytes(data), time.time())

    def read_file(self, path: str, max_bytes: int = 1 << 20) -> bytes:
        self._check()
        p = resolve_inside(path, self.workdir)
        if p not in self.files:
            raise FileNotFoundError(path)
        data = self.files[p][0]
        if len(data) > max_bytes:
            raise OutputLimitExceeded(f"{path} is {len(data)} bytes, more than max_bytes={max_bytes}")
        return data

    def copy_in(self, src: Path, dest: str | None = None) -> None:
        self._check()
        src = Path(src)
        d = resolve_inside(dest or self.workdir, self.workdir)
        if src.is_dir():
            for root, _, files in os.walk(src):
                for fn in files:
                    p = Path(root) / fn
                    if p.is_symlink() or not p.is_file():
                        continue
                    rel = p.relative_to(src).as_posix()
                    self.files[f"{d}/{rel}"] = (p.read_bytes(), p.stat().st_mtime)
        else:
            self.files[f"{d}/{src.name}"] = (src.read_bytes(), src.stat().st_mtime)

    def copy_out(self, src: str, dest: Path, max_bytes: int = 256 << 20) -> None:
        self._check()
        s = resolve_inside(src, self.workdir)
        chosen = {p: v for p, v in self.files.items() if p == s or p.startswith(s + "/")}
        if not chosen:
            raise FileNotFoundError(src)
        if sum(len(v[0]) for v in chosen.values()) > max_bytes:
            raise OutputLimitExceeded(f"copy exceeds {max_bytes} bytes")
        base = s.rsplit("/", 1)[-1]
        for p, (data, mtime) in chosen.items():
            rel = base if p == s else f"{base}/{p[len(s) + 1:]}"
            out = Path(dest) / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            os.utime(out, (mtime, mtime))

    def close(self) -> None:
        self.close_calls += 1
        self.closed = True

    def __enter__(self) -> "FakeSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
