"""Small helpers shared by nodes: atomic artifact writes, usage accounting, schema-checked asks."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("repro.agent")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temp file + rename, so a crash never leaves a half-written artifact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def add_usage(usage: dict | None, completion: Any = None, reasks: int = 0) -> dict:
    u = dict(usage or {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "reasks": 0})
    if completion is not None:
        u["prompt_tokens"] += completion.usage.prompt_tokens
        u["completion_tokens"] += completion.usage.completion_tokens
        u["calls"] += 1
    u["reasks"] = u.get("reasks", 0) + reasks
    return u


def ask_json(
    model: Any,
    messages: list[dict],
    schema: dict,
    usage: dict | None,
    *,
    check: Callable[[Any], str | None] = lambda obj: None,
    max_reasks: int = 2,
    max_tokens: int = 600,
) -> tuple[Any | None, dict, list[str]]:
    """Ask for schema-constrained JSON; re-ask at most ``max_reasks`` times on bad output.

    Returns (object or None, updated usage, problems seen). None means: every answer was
    unusable, and the caller must fall back *and say so* — never pretend it worked.
    """
    problems: list[str] = []
    msgs = list(messages)
    for attempt in range(max_reasks + 1):
        comp = model.complete(msgs, schema=schema, temperature=0.0, seed=attempt, max_tokens=max_tokens)
        usage = add_usage(usage, comp, reasks=1 if attempt else 0)
        obj = comp.parsed if comp.parsed is not None else _loads(comp.text)
        problem = None
        if comp.refusal:
            problem = f"refused: {comp.refusal[:200]}"
        elif comp.finish_reason == "length":
            problem = "answer cut off (too long)"
        elif not isinstance(obj, dict):
            problem = "answer was not a JSON object"
        else:
            problem = check(obj)
        if problem is None:
            return obj, usage, problems
        problems.append(problem)
        log.info("model answer rejected (%s); re-asking", problem)
        msgs = list(messages) + [
            {"role": "assistant", "content": (comp.text or "")[:2000]},
            {"role": "user", "content": f"That answer is unusable: {problem}. Answer again with JSON only, following the schema."},
        ]
    return None, usage, problems


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except json.JSONDecodeError:
        return None


def finished(state: dict, name: str) -> list[str]:
    return list(state.get("node_log", [])) + [name]
