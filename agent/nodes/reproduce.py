"""reproduce: reproduce.sh in a fresh sandbox from the submission alone (graders.reproduce)."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

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
    # the script's progress lines (experiment, step, loss, elapsed) as they come: the CLI prints them,
    # the run page shows them (events.jsonl); reproduction/reproduce.log grows with them
    rep = run_reproduction(sub, cfg.run_dir / "reproduction", ctx.sandbox_factory, timeout=timeout,
                           progress=lambda line: ctx.progress("log", line=line), seed=cfg.seed,
                           on_progress=lambda ev: ctx.progress("progress", **ev))
    data = rep.to_dict()
    data["dir"] = "reproduction"
    spent = float(data.get("duration_s") or 0.0)
    if cfg.seeds > 1:
        data["seed_runs"], extra = _more_seeds(ctx, sub, timeout, data)
        spent += extra
    write_json(cfg.run_dir / "reproduction.json", data)
    for r in data["results"].values():
        r.pop("curves", None)  # curves stay on disk; state holds only the numbers
    return {"reproduction": data, "sandbox_s": spent, "node_log": ["reproduce"]}


def _more_seeds(ctx: RunContext, sub, timeout: float, first: dict) -> tuple[dict, float]:
    """reproduce.sh again with REPRO_SEED = seed+1, seed+2, ..., each in a fresh container (as
    many at once as the cores allow: each training run uses every core it is given)."""
    cfg = ctx.config
    seeds = [cfg.seed + k for k in range(1, cfg.seeds)]

    def one(seed: int) -> dict:
        ctx.progress("node", name="reproduce", detail=f"fresh sandbox, REPRO_SEED={seed} ({cfg.seeds} seeds)")
        r = run_reproduction(sub, cfg.run_dir / "reproduction-seeds" / str(seed), ctx.sandbox_factory,
                             timeout=timeout, seed=seed, source=f"reproduce seed {seed}",
                             on_progress=lambda ev: ctx.progress("progress", **ev)).to_dict()
        return {"ok": r["ok"], "summary": r["summary"], "duration_s": r["duration_s"], "ignored": r["ignored"],
                "results": {e: {k: v for k, v in res.items() if k in ("metrics", "before", "file", "info")}
                            for e, res in r["results"].items()}}

    workers = max(1, min(len(seeds), (os.cpu_count() or 1) // 4))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = dict(zip(seeds, pool.map(one, seeds)))
    runs = {str(cfg.seed): {"ok": first["ok"], "summary": first["summary"], "duration_s": first["duration_s"],
                            "results": {e: {k: v for k, v in res.items() if k in ("metrics", "before", "file", "info")}
                                        for e, res in first["results"].items()}}}
    runs.update({str(s): r for s, r in done.items()})
    return runs, sum(float(r["duration_s"] or 0.0) for r in done.values())
