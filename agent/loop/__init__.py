"""The coding agent's tool loop: a LangGraph subgraph, model ⇄ tools, until a typed exit.

Its input is the run's state (plan, usage so far, budgets); its output only the keys whose
reducers are idempotent (``pending``, ``loop`` merged, ``files`` replaced), so the parent graph
never counts anything twice. The loop's own model usage and sandbox time live in ``loop``.
"""
from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph

from agent.context import RunContext
from agent.loop.nodes import model_step, route, tool_step
from agent.state import LoopRecord, PendingCall, merge


class LoopOutput(TypedDict, total=False):
    pending: list[PendingCall]
    loop: Annotated[LoopRecord, merge]
    files: dict[str, str]


class LoopState(LoopOutput, total=False):
    plan: dict[str, Any]
    usage: dict[str, int]
    sandbox_s: float
    started_at: float
    run_id: str


def build_loop() -> StateGraph:
    g = StateGraph(LoopState, output_schema=LoopOutput, context_schema=RunContext)
    g.add_node("model", model_step)
    g.add_node("tools", tool_step)
    g.add_conditional_edges(START, route, ["model", "tools", "__end__"])
    g.add_conditional_edges("model", route, ["model", "tools", "__end__"])
    g.add_conditional_edges("tools", route, ["model", "tools", "__end__"])
    return g
