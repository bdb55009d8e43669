"""Jobs for long work: detached, idempotent by name, re-attached (never restarted) after a resume."""
from __future__ import annotations

from agent.tools import ToolContext, ToolResult, handler
from agent.tools.shell import is_smoke_run
from agent.tools.specs import JobStatus, StartJob, StopJob, WaitJob


def describe(st: dict) -> str:
    if not st.get("exists"):
        return f"no job named {st.get('name')!r}"
    head = f"job {st['name']}: {st['state']}"
    if st.get("exit_code") is not None:
        head += f" (exit code {st['exit_code']})"
    head += f", {st['seconds']:.0f} s; log: {st['log']}"
    if st["state"] == "lost":
        head += " — its supervisor is gone (the workspace restarted); start it again under a new name"
    tail = "\n".join(st.get("tail") or [])
    return head + (f"\nlast lines:\n{tail}" if tail else "")


def _meta(st: dict) -> dict:
    return {"job": st.get("name"), "state": st.get("state"), "exit_code": st.get("exit_code"),
            "seconds": st.get("seconds"), "smoke": is_smoke_run(st.get("command") or "")}


@handler("start_job")
def start_job(a: StartJob, ctx: ToolContext) -> ToolResult:
    st = ctx.ws.start_job(a.name, a.command)
    if st.get("already"):
        text = f"a job named {a.name!r} exists already (a job never runs twice); its status:\n" + describe(st)
        if st.get("command") != a.command:
            text += "\nTo run a different command, give the job a new name."
    else:
        text = f"started job {a.name!r}; follow it with wait_job or job_status.\n" + describe(st)
    # the files the job started from: a smoke run proves reproduce.sh as it was then
    jobs = dict(ctx.loop.get("job_files") or {})
    if not st.get("already"):
        jobs[a.name] = ctx.loop.get("files_hash")
    return ToolResult(text, meta=_meta(st), updates={"job_files": jobs})


@handler("job_status")
def job_status(a: JobStatus, ctx: ToolContext) -> ToolResult:
    st = ctx.ws.job_status(a.name, a.tail)
    return ToolResult(describe(st), ok=bool(st.get("exists")), meta=_meta(st))


@handler("wait_job")
def wait_job(a: WaitJob, ctx: ToolContext) -> ToolResult:
    st = ctx.ws.wait_job(a.name, a.seconds)
    text = describe(st)
    if st.get("state") == "running":
        text += f"\n(still running after waiting {a.seconds} s; wait again or check later)"
    return ToolResult(text, ok=bool(st.get("exists")), meta=_meta(st))


@handler("stop_job")
def stop_job(a: StopJob, ctx: ToolContext) -> ToolResult:
    st = ctx.ws.stop_job(a.name)
    return ToolResult(describe(st), ok=bool(st.get("exists")), meta=_meta(st))
