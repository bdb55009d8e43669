"""The replication graph. Wiring only: nodes live in agent/nodes, state in agent/state.py.

ingest → plan → review_plan → implement → review_code → execute → {reproduce | debug | grade | stop}
review_plan → plan (reviewer feedback); review_code → revise → review_code (reviewer feedback)
debug → execute; reproduce → grade → report; stop → report. Every router checks the budgets.
"""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agent.context import RunContext
from agent.nodes import (after_debug, after_execute, after_plan, after_reproduce, after_review_code,
                         after_review_plan, debug, execute, grade, implement, ingest, plan, report, reproduce,
                         review_code, review_plan, revise, stop)
from agent.state import RunState


def build_graph() -> StateGraph:
    g = StateGraph(RunState, context_schema=RunContext)
    for name, fn in [("ingest", ingest), ("plan", plan), ("review_plan", review_plan), ("implement", implement),
                     ("review_code", review_code), ("revise", revise), ("execute", execute), ("debug", debug),
                     ("reproduce", reproduce), ("grade", grade), ("report", report), ("stop", stop)]:
        g.add_node(name, fn)
    g.add_edge(START, "ingest")
    g.add_edge("ingest", "plan")
    g.add_conditional_edges("plan", after_plan, ["review_plan", "stop"])
    g.add_conditional_edges("review_plan", after_review_plan, ["plan", "implement", "stop"])
    g.add_edge("implement", "review_code")
    g.add_conditional_edges("review_code", after_review_code, ["revise", "execute", "stop"])
    g.add_edge("revise", "review_code")
    g.add_conditional_edges("execute", after_execute, ["reproduce", "debug", "grade", "stop"])
    g.add_conditional_edges("debug", after_debug, ["execute", "stop"])
    g.add_conditional_edges("reproduce", after_reproduce, ["grade", "stop"])
    g.add_edge("grade", "report")
    g.add_edge("stop", "report")
    g.add_edge("report", END)
    return g


def compile_graph(checkpointer=None):
    return build_graph().compile(checkpointer=checkpointer)


# For LangGraph Studio (langgraph.json): the uncompiled-checkpointer variant.
graph = compile_graph()
