"""Schema-constrained asks with bounded re-asks (the planning stages' one way to ask the model)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from agent.usage import add_usage
from graders.files import parse_json

log = logging.getLogger("repro.agent")


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
        obj = comp.parsed if comp.parsed is not None else parse_json(comp.text)
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
