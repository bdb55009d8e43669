"""execute: a short smoke run of every experiment in the agent's sandbox, to catch bugs early.

The full-size run happens once, in the reproduction container; here each method trains on a
few dozen sentences so a broken script costs seconds, not the whole budget.
"""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished, write_atomic
from agent.nodes.routes import remaining_sandbox_s
from agent.plan import Plan
from agent.recipes import get_recipe
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
    spent = 0.0
    with ctx.sandbox_factory("agent") as sb:
        sb.copy_in(sub)
        for exp in the_plan.experiments:
            cmd = get_recipe(exp.method).command(the_plan, out=f"smoke/{exp.method}", smoke=True,
                                                 smoke_limit=SMOKE_SENTENCES)
            ctx.progress("node", name="execute", detail=cmd)
            if state.get("sandbox_s", 0.0) + spent >= cfg.budgets.max_sandbox_s:
                outcome.update(ok=False, command=cmd, summary="not run: the sandbox-time budget is spent")
                break
            timeout = remaining_sandbox_s({**state, "sandbox_s": state.get("sandbox_s", 0.0) + spent}, runtime,
                                          cfg.exec_timeout_s)
            res = sb.exec(cmd, timeout=timeout)
            spent += res.duration_s or 0.0
            chunks.append(f"$ {cmd}\n{res.stdout}\n{res.stderr}\n[{res.summary()}]\n")
            if not res.ok:
                outcome.update(ok=False, command=cmd, returncode=res.returncode, summary=res.summary(),
                               timed_out=res.timed_out, oom_killed=res.oom_killed,
                               stderr_tail=(res.stderr or res.stdout)[-3000:])
                break
    write_atomic(log_path, "".join(chunks))
    return {"execution": outcome, "sandbox_s": state.get("sandbox_s", 0.0) + spent,
            "node_log": finished(state, "execute")}
