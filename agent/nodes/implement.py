"""implement: fill each experiment's recipe and write the submission (train*.py, reproduce.sh, README.md)."""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished, sha256_text, write_atomic
from agent.plan import Plan
from agent.recipes import render_submission
from agent.state import RunState


def implement(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    the_plan = Plan.model_validate(state["plan"])
    ctx.progress("node", name="implement", detail=", ".join(e.method for e in the_plan.experiments))
    files = render_submission(the_plan)
    sub = ctx.config.run_dir / "submission"
    for rel, content in files.items():
        write_atomic(sub / rel, content)
    (sub / "reproduce.sh").chmod(0o755)
    return {"files": {rel: sha256_text(c) for rel, c in files.items()}, "node_log": finished(state, "implement")}
