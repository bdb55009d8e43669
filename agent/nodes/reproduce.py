"""reproduce: reproduce.sh in a fresh sandbox from the submission alone (graders.reproduce)."""
from __future__ import annotations

import time

from langgraph.runtime import Runtime

from agent.context import RunContext
from graders.files import write_json
from agent.state import RunState
from graders.reproduce import reproduce as run_reproduction


def reproduce(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    sub = cfg.run_dir / "submission"
    if not (sub / "reproduce.sh").is_file():
        data = {"ok": False, "returncode": None, "summary": "not run: the submission has no reproduce.sh",
                "start_time": None, "duration_s": 0.0, "results": {}, "ignored": [], "dir": None}
        write_json(cfg.run_dir / "reproduction.json", data)
        return {"reproduction": data, "node_log": ["reproduce"]}
    b = cfg.budgets
    spent = state.get("sandbox_s", 0.0) + (state.get("loop") or {}).get("sandbox_s", 0.0)
    wall_left = b.max_wall_s - (time.time() - state.get("started_at", time.time()))
    # what the budgets leave, but never less than a minute: the loop's exit promised a graded submission
    timeout = max(60.0, min(cfg.reproduce_timeout_s, b.max_sandbox_s - spent, wall_left))
    ctx.progress("node", name="reproduce", detail=f"fresh sandbox, REPRO_SEED={cfg.seed}")
    rep = run_reproduction(sub, cfg.run_dir / "reproduction", ctx.sandbox_factory, timeout=timeout,
                           progress=lambda line: ctx.progress("log", line=line), seed=cfg.seed)
    data = rep.to_dict()
    data["dir"] = "reproduction"
    write_json(cfg.run_dir / "reproduction.json", data)
    for r in data["results"].values():
        r.pop("curves", None)  # curves stay on disk; state holds only the numbers
    return {"reproduction": data, "sandbox_s": float(data.get("duration_s") or 0.0), "node_log": ["reproduce"]}
