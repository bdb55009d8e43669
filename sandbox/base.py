"""The one sandbox interface every backend implements.

Limits and errors are part of the contract (inspect_ai style):

* ``exec`` never raises for a non-zero exit, an OOM kill or a timeout: it returns an
  ``ExecResult`` whose flags say what happened. It raises ``SandboxUnavailable`` when the
  backend itself is gone (engine down, container vanished) and ``PolicyViolation`` when the
  caller asks for something the policy forbids (e.g. a secret-looking env var).
* stdout/stderr keep a head and a tail up to ``policy.output_cap_bytes`` each; when bytes
  were dropped ``truncated`` is True. Output is decoded as UTF-8 with replacement, so
  binary output never crashes the caller.
* ``read_file``/``copy_out`` raise ``OutputLimitExceeded`` past ``max_bytes`` and leave no
  partial destination behind.
* ``exec(..., on_output=fn)`` streams: ``fn(stream, chunk)`` (stream 1 = stdout, 2 = stderr,
  ``chunk`` raw bytes) is called for every chunk as it arrives, in the calling thread, before
  ``exec`` returns, and after the chunk is in the exec's log file (which is written as the
  output comes, never only at the end). A callback that raises ``Exception`` is not called again
  and the command runs on (``extra["on_output_error"]`` says why); ``sandbox.output.Lines``
  turns chunks into whole lines. The result keeps its head and tail as without a callback.
* ``close`` is idempotent; sandboxes are context managers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

#: ``on_output(stream, chunk)``: 1 = stdout, 2 = stderr; raw bytes as they arrive
OutputCallback = Callable[[int, bytes], None]


class SandboxError(Exception):
    """Base class for sandbox errors."""


class SandboxUnavailable(SandboxError):
    """The backend cannot run anything (no engine, image missing, container gone)."""


class SandboxTimeout(SandboxError):
    """Raised only by helpers that must fail on timeout; carries the partial output."""

    def __init__(self, message: str, result: "ExecResult | None" = None):
        super().__init__(message)
        self.result = result


class OutputLimitExceeded(SandboxError):
    """A read or copy would exceed its byte cap."""


class PolicyViolation(SandboxError):
    """The request breaks the sandbox policy (forbidden env, path traversal, ...)."""


class RuntimeUnavailable(SandboxUnavailable, PolicyViolation):
    """The policy demands an OCI runtime (e.g. gVisor ``runsc``) the engine lacks: refuse to start."""


@dataclass
class ExecResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0
    #: path on the host of the full (capped) log of this exec, when the backend keeps one
    log_path: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.oom_killed

    def summary(self) -> str:
        """One line a person (or a model) can read: what happened, not the output."""
        if self.timed_out:
            what = "timed out"
        elif self.oom_killed:
            what = "killed: out of memory"
        elif self.returncode == 0:
            what = "succeeded"
        else:
            what = f"failed with exit code {self.returncode}"
        return f"{what} after {self.duration_s:.1f}s" + (" (output truncated)" if self.truncated else "")


@runtime_checkable
class Sandbox(Protocol):
    """A place to run untrusted commands. Paths inside are POSIX paths under the workdir."""

    workdir: str

    def exec(
        self,
        cmd: list[str] | str,
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult: ...

    def write_file(self, path: str, data: str | bytes) -> None: ...

    def read_file(self, path: str, max_bytes: int = 1 << 20) -> bytes: ...

    def copy_in(self, src: Path, dest: str | None = None) -> None:
        """Copy a host file or directory tree into the sandbox (default: the workdir)."""
        ...

    def copy_out(self, src: str, dest: Path, max_bytes: int = 256 << 20) -> None:
        """Copy a sandbox path (file or tree) to a host directory ``dest``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Sandbox": ...

    def __exit__(self, *exc) -> None: ...
