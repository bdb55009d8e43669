"""Sandboxes: one interface (``base.Sandbox``), several backends, one hardening policy.

``open_sandbox("docker"|"local"|"fake", run_id=...)`` is the factory; the Docker backend is
imported lazily so ``import sandbox`` never imports ``docker``.
"""
from __future__ import annotations

from pathlib import Path

from sandbox.base import (
    ExecResult,
    OutputLimitExceeded,
    PolicyViolation,
    RuntimeUnavailable,
    Sandbox,
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
)
from sandbox.policy import SandboxPolicy

BACKENDS = ("docker", "local", "fake")


def open_sandbox(
    backend: str = "docker",
    *,
    run_id: str,
    policy: SandboxPolicy | None = None,
    image: str | None = None,
    role: str = "agent",
    log_dir: Path | None = None,
    gpu: bool = False,
    trust: str = "trusted",
    name: str | None = None,
    reuse: bool = False,
    path: Path | None = None,
) -> Sandbox:
    """Open a sandbox. ``backend``: "docker" (hardened container; ``image`` defaults to
    ``repro-sandbox:latest``, which must be built: `repro sandbox build`), "local" (trusted dev use on the
    host; ``trust="untrusted"`` needs bwrap), or "fake" (in-memory, for unit tests)."""
    if backend == "docker":
        from sandbox.docker import DockerSandbox

        return DockerSandbox(policy, run_id=run_id, image=image, role=role, gpu=gpu, log_dir=log_dir, name=name,
                             reuse=reuse)
    if backend == "local":
        from sandbox.local import LocalSandbox

        return LocalSandbox(policy, run_id=run_id, trust=trust, log_dir=log_dir, path=path)  # type: ignore[arg-type]
    if backend == "fake":
        from sandbox.fake import FakeSandbox

        return FakeSandbox(policy=policy, run_id=run_id)
    raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {BACKENDS}")


__all__ = [
    "BACKENDS",
    "ExecResult",
    "OutputLimitExceeded",
    "PolicyViolation",
    "RuntimeUnavailable",
    "Sandbox",
    "SandboxError",
    "SandboxPolicy",
    "SandboxTimeout",
    "SandboxUnavailable",
    "open_sandbox",
]
