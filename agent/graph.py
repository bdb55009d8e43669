"""The replication graph. Wiring only: nodes live in agent/nodes, state in agent/state.py."""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agent.context import RunContext
from agent.nodes import (after_debug, after_execute, after_plan, debug, execute, grade, implement, ingest, plan,
                         report, reproduce, stop)
from agent.state import RunState


def build_graph() -> StateGraph:
    g = StateGraph(RunState, context_schema=RunContext)
    for name, fn in [("ingest", ingest), ("plan", plan), ("implement", implement), ("execute", execute),
                     ("debug", debug), ("reproduce", reproduce), ("grade", grade), ("report", report),
                     ("stop", stop)]:
        g.add_node(name, fn)
    g.add_edge(START, "ingest")
    g.add_edge("ingest", "plan")
    g.add_conditional_edges("plan", after_plan, ["implement", "stop"])
    g.add_edge("implement", "execute")
    g.add_conditional_edges("execute", after_execute, ["reproduce", "debug", "grade", "stop"])
    g.add_conditional_edges("debug", after_debug, ["execute", "stop"])
    g.add_edge("reproduce", "grade")
    g.add_edge("grade", "report")
    g.add_edge("stop", "report")
    g.add_edge("report", END)
    return g


def compile_graph(checkpointer=None):
    return build_graph().compile(checkpointer=checkpointer)


# For LangGraph Studio (langgraph.json): the uncompiled-checkpointer variant.
graph = compile_graph()
