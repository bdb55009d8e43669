"""reproduce: reproduce.sh in a fresh sandbox from the submission alone (graders.reproduce)."""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished, write_json
from agent.nodes.routes import remaining_sandbox_s
from agent.state import RunState
from graders.reproduce import reproduce as run_reproduction


def reproduce(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    ctx.progress("node", name="reproduce", detail="fresh sandbox")
    rep = run_reproduction(
        cfg.run_dir / "submission",
        cfg.run_dir / "reproduction",
        ctx.sandbox_factory,
        timeout=remaining_sandbox_s(state, runtime, cfg.reproduce_timeout_s),
        progress=lambda line: ctx.progress("log", line=line),
    )
    data = rep.to_dict()
    data["dir"] = "reproduction"
    for r in data["results"].values():
        r.pop("history", None)  # curves stay on disk; state holds only the numbers
    write_json(cfg.run_dir / "reproduction.json", rep.to_dict())
    return {"reproduction": data, "sandbox_s": state.get("sandbox_s", 0.0) + float(data.get("duration_s") or 0.0),
            "node_log": finished(state, "reproduce")}
