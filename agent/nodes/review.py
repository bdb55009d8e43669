"""review_plan / review_code: the human gate (``repro run --review``), a LangGraph interrupt.

Without ``RunConfig.review`` both nodes pass straight through. With it, the node pauses the
graph (``interrupt``); the runner writes review/pending.json and returns. ``repro review`` (or
the web UI) writes review/decision.json (agent.review_store) and resumes the run with it:

* approve  -> go on (implement / execute)
* edit     -> the edited plan replaces the plan / the edited files replace the submission's
* feedback -> the text goes back to the agent: re-plan (plan stage) or revise the code (code
              stage), then the gate pauses again, at most ``max_review_rounds`` times.

A node that calls ``interrupt`` is re-run from the top on resume, so everything before the
call is side-effect free.
"""
from __future__ import annotations

import json

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent.context import RunContext
from agent.nodes.common import finished, sha256_text, write_atomic
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
    review = dict(state.get("review") or {})
    entry = {"stage": decision.stage, "action": decision.action, **({"text": decision.text} if decision.text else {})}
    review["history"] = list(review.get("history", [])) + [entry]
    review["next"] = nxt
    review["feedback"] = decision.text if decision.action == "feedback" else None
    review.update(extra)
    return review


def review_plan(state: RunState, runtime: Runtime[RunContext]) -> dict:
    d = _gate(state, runtime, "plan")
    if d is None:
        return {"review": {**(state.get("review") or {}), "next": None, "feedback": None}}
    out: dict = {"node_log": finished(state, "review_plan")}
    if d.action == "feedback":
        out["review"] = _record(state, d, "plan")
    elif d.action == "edit":
        edited = Plan.model_validate(d.plan)
        edited.notes.append("plan edited by the reviewer")
        out["plan"] = json.loads(edited.model_dump_json())
        write_atomic(runtime.context.config.run_dir / "plan-reviewed.json", edited.model_dump_json(indent=2))
        out["review"] = _record(state, d, "implement")
    else:
        out["review"] = _record(state, d, "implement")
    return out


def review_code(state: RunState, runtime: Runtime[RunContext]) -> dict:
    d = _gate(state, runtime, "code")
    if d is None:
        return {"review": {**(state.get("review") or {}), "next": None, "feedback": None}}
    out: dict = {"node_log": finished(state, "review_code")}
    if d.action == "feedback":
        out["review"] = _record(state, d, "revise")
    elif d.action == "edit":
        sub = runtime.context.config.run_dir / "submission"
        files = dict(state.get("files", {}))
        for rel, content in (d.files or {}).items():
            write_atomic(sub / rel, content)
            files[rel] = sha256_text(content)
        out["files"] = files
        out["review"] = _record(state, d, "execute", edited_files=sorted(d.files or {}))
    else:
        out["review"] = _record(state, d, "execute")
    return out
