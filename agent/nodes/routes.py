"""Routers: where the graph goes next. Each asks the one budget guard (agent.budget) first; a
spent budget before the code exists sends the run to ``stop`` (a partial report that names the
budget). Once the tool loop has run, every path leads through the reproduction to grading."""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.budget import over_budget
from agent.context import RunContext
from agent.loop.nodes import run_usage
from agent.state import RunState


def _over(state: RunState, runtime: Runtime[RunContext]) -> str | None:
    view = {**state, "usage": run_usage(state),
            "sandbox_s": state.get("sandbox_s", 0.0) + (state.get("loop") or {}).get("sandbox_s", 0.0)}
    return over_budget(view, runtime.context.config.budgets, runtime.context.model.name)


def after_plan(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "stop" if _over(state, runtime) else "review_plan"


def after_review_plan(state: RunState, runtime: Runtime[RunContext]) -> str:
    if _over(state, runtime):
        return "stop"
    return "plan" if (state.get("review") or {}).get("next") == "plan" else "start_code"


def after_review_code(state: RunState, runtime: Runtime[RunContext]) -> str:
    return "code" if (state.get("review") or {}).get("next") == "code" else "reproduce"


def stop(state: RunState, runtime: Runtime[RunContext]) -> dict:
    """Ends the run cleanly: the report says why, and everything done so far is kept."""
    return {"status": "stopped", "stop_reason": _over(state, runtime) or state.get("stop_reason") or "stopped",
            "node_log": ["stop"]}
