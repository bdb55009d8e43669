"""Routers: where the graph goes next, and the budget checks between nodes."""
from __future__ import annotations

import time

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished
from agent.state import RunState


def over_budget(state: RunState, runtime: Runtime[RunContext]) -> str | None:
    b = runtime.context.config.budgets
    u = state.get("usage") or {}
    tokens = u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)
    if tokens > b.max_model_tokens:
        return f"model token budget exceeded ({tokens} > {b.max_model_tokens})"
    elapsed = time.time() - state.get("started_at", time.time())
    if elapsed > b.max_wall_s:
        return f"wall-time budget exceeded ({elapsed:.0f} s > {b.max_wall_s:.0f} s)"
    return None


def after_plan(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "stop" if over_budget(state, runtime) else "implement"


def after_execute(state: RunState, runtime: Runtime[RunContext]) -> str:
    if over_budget(state, runtime):
        return "stop"
    if state["execution"]["ok"]:
        return "reproduce"
    if state.get("debug_iterations", 0) < runtime.context.config.budgets.max_debug_iterations:
        return "debug"
    return "grade"  # no working code: grade what exists (execution leaves will score 0)


def after_debug(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "stop" if over_budget(state, runtime) else "execute"


def stop(state: RunState, runtime: Runtime[RunContext]) -> dict:
    """Ends the run cleanly: the report says why, and everything done so far is kept."""
    return {"status": "stopped", "stop_reason": over_budget(state, runtime) or "stopped",
            "node_log": finished(state, "stop")}
