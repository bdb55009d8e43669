"""review_plan / review_code: the human gate (``repro run --review``), a LangGraph interrupt.

Without ``RunConfig.review`` both nodes pass straight through. With it, the node pauses the
graph (``interrupt``); the runner writes review/pending.json and returns. ``repro review`` (or
the web UI) writes review/decision.json (agent.review_store) and resumes the run with it:

* approve  -> go on (the coding agent / the reproduction)
* edit     -> the edited plan replaces the plan / the edited files replace the workspace's
* feedback -> the text goes back to the agent: re-plan (plan stage), or back into the tool loop
              as a message to the coding agent (code stage); then the gate pauses again, at
              most ``max_review_rounds`` times.

A node that calls ``interrupt`` is re-run from the top on resume, so everything before the
call is side-effect free.
"""
from __future__ import annotations

import json

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent.context import RunContext
from graders.files import write_atomic
from agent.plan import Plan
from agent.review_store import ReviewDecision
from agent.state import RunState


def _rounds(state: RunState, stage: str) -> int:
    return sum(1 for h in (state.get("review") or {}).get("history", []) if h["stage"] == stage)


def _gate(state: RunState, runtime: Runtime[RunContext], stage: str) -> ReviewDecision | None:
    cfg = runtime.context.config
    if not cfg.review or _rounds(state, stage) >= cfg.budgets.max_review_rounds:
        return None
    runtime.context.progress("node", name=f"review_{stage}", detail="waiting for a reviewer")
    answer = interrupt({"stage": stage, "round": _rounds(state, stage) + 1})
    return ReviewDecision.model_validate(answer)


def _record(state: RunState, decision: ReviewDecision, nxt: str, **extra) -> dict:
    entry = {"stage": decision.stage, "action": decision.action, **({"text": decision.text} if decision.text else {})}
    return {"history": list((state.get("review") or {}).get("history", [])) + [entry], "next": nxt,
            "feedback": decision.text if decision.action == "feedback" else None, **extra}


def review_plan(state: RunState, runtime: Runtime[RunContext]) -> dict:
    d = _gate(state, runtime, "plan")
    if d is None:
        return {"review": {"next": None, "feedback": None}}
    out: dict = {"node_log": ["review_plan"]}
    if d.action == "feedback":
        out["review"] = _record(state, d, "plan")
    elif d.action == "edit":
        edited = Plan.model_validate(d.plan)
        edited.notes.append("plan edited by the reviewer")
        out["plan"] = json.loads(edited.model_dump_json())
        write_atomic(runtime.context.config.run_dir / "plan-reviewed.json", edited.model_dump_json(indent=2))
        out["review"] = _record(state, d, "code")
    else:
        out["review"] = _record(state, d, "code")
    return out


def review_code(state: RunState, runtime: Runtime[RunContext]) -> dict:
    d = _gate(state, runtime, "code")
    if d is None:
        return {"review": {"next": None, "feedback": None}}
    out: dict = {"node_log": ["review_code"]}
    if d.action == "feedback":
        # back into the tool loop: the coding agent reads the feedback as its next message
        out["review"] = _record(state, d, "code")
        out["loop"] = {"exit": None, "exit_detail": "", "submitted": None,
                       "feedback": [f"A human reviewer read your code and asks: {(d.text or '')[:2000]}"]}
    elif d.action == "edit":
        from agent.loop.nodes import workspace

        ws = workspace(runtime.context)
        for rel, content in (d.files or {}).items():
            ws.write_text(rel, content)
        ws.sync(step=(state.get("loop") or {}).get("turn", 0))
        out["files"] = dict(ws.manifest)
        out["review"] = _record(state, d, "reproduce", edited_files=sorted(d.files or {}))
    else:
        out["review"] = _record(state, d, "reproduce")
    return out
