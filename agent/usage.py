"""Model usage accounting — one helper for the whole agent: counters add up, subtract, merge."""
from __future__ import annotations

from typing import Any

COUNTERS = ("prompt_tokens", "completion_tokens", "calls", "reasks")


def zero() -> dict[str, int]:
    return {k: 0 for k in COUNTERS}


def plus(usage: dict | None, delta: dict | None) -> dict[str, int]:
    """usage + delta, counter by counter (the LangGraph reducer of RunState.usage)."""
    out = dict(zero(), **(usage or {}))
    for k in COUNTERS:
        out[k] = out.get(k, 0) + (delta or {}).get(k, 0)
    return out


def minus(after: dict, before: dict | None) -> dict[str, int]:
    return {k: after.get(k, 0) - (before or {}).get(k, 0) for k in COUNTERS}


def of(completion: Any, reasks: int = 0) -> dict[str, int]:
    """The usage of one model call (completion None: only re-asks are counted)."""
    if completion is None:
        return dict(zero(), reasks=reasks)
    return {"prompt_tokens": completion.usage.prompt_tokens, "completion_tokens": completion.usage.completion_tokens,
            "calls": 1, "reasks": reasks}


def add_usage(usage: dict | None, completion: Any = None, reasks: int = 0) -> dict[str, int]:
    return plus(usage, of(completion, reasks))
