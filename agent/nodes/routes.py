"""Routers: where the graph goes next, and the budget checks between nodes.

Every router first asks ``over_budget``; a budget exceeded sends the run to ``stop``, which
ends it cleanly (the report node still writes a partial report that names the budget).
"""
from __future__ import annotations

import time

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished
from agent.state import RunState


def over_budget(state: RunState, runtime: Runtime[RunContext]) -> str | None:
    ctx = runtime.context
    b = ctx.config.budgets
    u = state.get("usage") or {}
    tokens = u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)
    if tokens > b.max_model_tokens:
        return f"model token budget exceeded ({tokens} > {b.max_model_tokens})"
    if b.max_dollars is not None:
        spent = b.dollars(getattr(ctx.model, "name", ""), u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
        if spent > b.max_dollars:
            return f"dollar budget exceeded (${spent:.4f} > ${b.max_dollars:.4f})"
    elapsed = time.time() - state.get("started_at", time.time())
    if elapsed > b.max_wall_s:
        return f"wall-time budget exceeded ({elapsed:.0f} s > {b.max_wall_s:.0f} s)"
    sandbox_s = state.get("sandbox_s", 0.0)
    if sandbox_s > b.max_sandbox_s:
        return f"sandbox-time budget exceeded ({sandbox_s:.0f} s > {b.max_sandbox_s:.0f} s)"
    return None


def remaining_sandbox_s(state: RunState, runtime: Runtime[RunContext], wanted: float) -> float:
    """A sandbox command's timeout: never longer than what the sandbox and wall budgets have left."""
    b = runtime.context.config.budgets
    wall_left = b.max_wall_s - (time.time() - state.get("started_at", time.time()))
    return max(1.0, min(wanted, b.max_sandbox_s - state.get("sandbox_s", 0.0), wall_left))


def after_plan(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "stop" if over_budget(state, runtime) else "review_plan"


def after_review_plan(state: RunState, runtime: Runtime[RunContext]) -> str:
    if over_budget(state, runtime):
        return "stop"
    return "plan" if (state.get("review") or {}).get("next") == "plan" else "implement"


def after_review_code(state: RunState, runtime: Runtime[RunContext]) -> str:
    if over_budget(state, runtime):
        return "stop"
    return "revise" if (state.get("review") or {}).get("next") == "revise" else "execute"


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


def after_reproduce(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "stop" if over_budget(state, runtime) else "grade"


def stop(state: RunState, runtime: Runtime[RunContext]) -> dict:
    """Ends the run cleanly: the report says why, and everything done so far is kept."""
    return {"status": "stopped", "stop_reason": over_budget(state, runtime) or state.get("stop_reason") or "stopped",
            "node_log": finished(state, "stop")}
