"""Sandbox path rules shared by the backends: everything lives under the workdir."""
from __future__ import annotations

from pathlib import PurePosixPath

from sandbox.base import PolicyViolation


def resolve_inside(path: str, workdir: str) -> str:
    """Normalise a sandbox path (relative paths are under ``workdir``); refuse anything that
    ends up outside ``workdir`` (``..`` cannot climb out)."""
    if not isinstance(path, str) or "\x00" in path or path == "":
        raise PolicyViolation(f"invalid sandbox path {path!r}")
    workdir = workdir.rstrip("/") or "/"
    p = PurePosixPath(path)
    if not p.is_absolute():
        p = PurePosixPath(workdir) / p
    parts: list[str] = []
    for part in p.parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    norm = "/" + "/".join(parts)
    if not (norm == workdir or norm.startswith(workdir + "/")):
        raise PolicyViolation(f"path {path!r} is outside the sandbox workdir {workdir}")
    return norm
