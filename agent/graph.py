"""The replication graph. Wiring only: nodes live in agent/nodes and agent/loop, state in agent/state.py.

ingest → plan → review_plan → start_code → code (the tool loop, a subgraph: model ⇄ tools) →
finish_code → review_code → reproduce → grade → report.
review_plan → plan (reviewer feedback); review_code → code (feedback goes to the coding agent);
a budget spent before the code exists → stop → report. Every exit of the loop leads to grading.
"""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agent.context import RunContext
from agent.loop import build_loop
from agent.nodes import (after_plan, after_review_code, after_review_plan, finish_code, grade, ingest, plan, report,
                         reproduce, review_code, review_plan, start_code, stop)
from agent.state import RunState


def build_graph() -> StateGraph:
    g = StateGraph(RunState, context_schema=RunContext)
    for name, fn in [("ingest", ingest), ("plan", plan), ("review_plan", review_plan), ("start_code", start_code),
                     ("finish_code", finish_code), ("review_code", review_code), ("reproduce", reproduce),
                     ("grade", grade), ("report", report), ("stop", stop)]:
        g.add_node(name, fn)
    g.add_node("code", build_loop().compile())  # inherits the run's checkpointer: every loop step is saved
    g.add_edge(START, "ingest")
    g.add_edge("ingest", "plan")
    g.add_conditional_edges("plan", after_plan, ["review_plan", "stop"])
    g.add_conditional_edges("review_plan", after_review_plan, ["plan", "start_code", "stop"])
    g.add_edge("start_code", "code")
    g.add_edge("code", "finish_code")
    g.add_edge("finish_code", "review_code")
    g.add_conditional_edges("review_code", after_review_code, ["code", "reproduce"])
    g.add_edge("reproduce", "grade")
    g.add_edge("grade", "report")
    g.add_edge("stop", "report")
    g.add_edge("report", END)
    return g


def compile_graph(checkpointer=None):
    return build_graph().compile(checkpointer=checkpointer)


# For LangGraph Studio (langgraph.json): the uncompiled-checkpointer variant.
graph = compile_graph()
