"""execute: a short smoke run of every experiment in the agent's sandbox, to catch bugs early.

The full-size run happens once, in the reproduction container; here each method trains on a
few dozen sentences so a broken script costs seconds, not the whole budget.
"""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished, write_atomic
from agent.plan import Plan
from agent.state import RunState

SMOKE_SENTENCES = 64


def execute(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    the_plan = Plan.model_validate(state["plan"])
    iteration = state.get("debug_iterations", 0)
    log_path = cfg.run_dir / "logs" / f"execute-{iteration}.log"
    sub = cfg.run_dir / "submission"
    outcome: dict = {"ok": True, "iteration": iteration, "log": str(log_path.relative_to(cfg.run_dir))}
    chunks: list[str] = []
    with ctx.sandbox_factory("agent") as sb:
        sb.copy_in(sub)
        for exp in the_plan.experiments:
            cmd = f"python train.py --method {exp.method} --epochs 1 --train-limit {SMOKE_SENTENCES} --out smoke/{exp.method}"
            ctx.progress("node", name="execute", detail=cmd)
            res = sb.exec(cmd, timeout=cfg.exec_timeout_s)
            chunks.append(f"$ {cmd}\n{res.stdout}\n{res.stderr}\n[{res.summary()}]\n")
            if not res.ok:
                outcome.update(ok=False, command=cmd, returncode=res.returncode, summary=res.summary(),
                               timed_out=res.timed_out, oom_killed=res.oom_killed,
                               stderr_tail=(res.stderr or res.stdout)[-3000:])
                break
    write_atomic(log_path, "".join(chunks))
    return {"execution": outcome, "node_log": finished(state, "execute")}
