"""Sandboxes: one interface (``base.Sandbox``), several backends, one hardening policy."""
from sandbox.base import (
    ExecResult,
    OutputLimitExceeded,
    PolicyViolation,
    Sandbox,
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
)

__all__ = [
    "ExecResult",
    "OutputLimitExceeded",
    "PolicyViolation",
    "Sandbox",
    "SandboxError",
    "SandboxTimeout",
    "SandboxUnavailable",
]
