"""plan: the paper's experiments -> a plan that hides nothing (agent/planning does the work).

A capable model's experiments, methods and recipes are kept (grounding checks them and notes each
disagreement); a weak model's plan is completed with every experiment the paper reports results
for. Targets always carry their provenance; the offline substitutions, the scale-down and a
recipe that only approximates the paper's method are deviations.
Stage files under ``<run>/plan/``; ``plan.json`` holds the result.
"""
from __future__ import annotations

import json
from pathlib import Path

from langgraph.runtime import Runtime

from agent.context import RunContext
from graders.files import write_json
from agent.planning.build import build_plan
from agent.planning.grounding import candidates_for
from agent.planning.stages import STAGE_FILES, stage_claims, stage_settings
from agent.recipes import registry
from agent.state import RunState
from agent.usage import minus, plus
from papers.paper import Paper


def addendum_for(paper_path: Path) -> str | None:
    """PaperBench's layout: an addendum.md beside the paper holds its authors' clarifications."""
    p = Path(paper_path).with_name("addendum.md")
    return p.read_text(errors="replace")[:20_000] if p.is_file() else None


def plan(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    ctx.progress("node", name="plan", detail=ctx.model.name)
    paper = Paper.model_validate_json((cfg.run_dir / "paper.json").read_text())
    feedback = (state.get("review") or {}).get("feedback")
    cands = candidates_for(paper, ctx.model)  # a capable model is shown many more result rows
    start = plus(state.get("usage"), None)
    s1, usage = stage_claims(ctx, start, paper, cands, sorted(registry()), feedback)
    s2, usage = stage_settings(ctx, usage, paper, cands, s1["experiments"], feedback)
    the_plan = build_plan(paper, s1, s2, offline=ctx.offline, train_limit=cfg.train_limit, epochs=cfg.epochs,
                          feedback=feedback, addendum=addendum_for(cfg.paper_path), broker=ctx.broker)
    write_json(cfg.run_dir / "plan.json", {
        "stages": {STAGE_FILES[n]: s["source"] for n, s in ((1, s1), (2, s2))},
        "problems": [f"stage {n}: {p}" for n, s in ((1, s1), (2, s2)) for p in s["problems"]],
        "plan": the_plan.model_dump(mode="json")})
    return {"plan": json.loads(the_plan.model_dump_json()), "usage": minus(usage, start), "node_log": ["plan"]}
