"""start_code / finish_code: around the tool loop (agent/loop). The loop writes the code; these
open its clock and close it: running jobs are stopped, the workspace is synced one last time, and
the submission on the host is what the reproduction re-runs — whatever the exit."""
from __future__ import annotations

import time

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.loop.nodes import workspace
from agent.state import RunState


def start_code(state: RunState, runtime: Runtime[RunContext]) -> dict:
    loop = state.get("loop") or {}
    runtime.context.progress("node", name="code", detail="the agent writes, runs and fixes the code")
    return {"loop": {} if loop.get("started_at") else {"started_at": time.time(), "turn": 0}}


def finish_code(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    ws = workspace(ctx)
    loop = state.get("loop") or {}
    stopped = []
    for name in ws.running_jobs():  # a stopped loop leaves no job behind to race the reproduction
        ws.stop_job(name)
        stopped.append(name)
    ws.sync(step=loop.get("turn", 0))
    ws.copy_logs()
    notes = []
    if "reproduce.sh" not in ws.manifest:
        notes.append("the workspace has no reproduce.sh: the reproduction cannot run; graded as it is")
    ctx.progress("node", name="code", detail=f"loop ended: {loop.get('exit')} after {loop.get('turn', 0)} turns")
    return {"files": dict(ws.manifest), "loop": {"jobs_stopped_at_exit": stopped, "exit_notes": notes},
            "node_log": ["code"]}
