"""Jobs for long work: detached, idempotent by name, re-attached (never restarted) after a resume.

While ``wait_job`` waits, the job's log streams to the host (``logs/job-<name>.log``) and its
progress lines (graders.reproduce.ProgressLines: experiment, step, loss, elapsed) go to the run's
progress callback as ``progress`` events: the CLI prints them, the run page shows them.
"""
from __future__ import annotations

import time

from agent.tools import ToolContext, ToolResult, handler
from agent.tools.shell import is_smoke_run
from agent.tools.specs import JobStatus, StartJob, StopJob, WaitJob
from graders.reproduce import ProgressLines, ProgressStream, experiments_of


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
    return {"job": st.get("name"), "state": st.get("state"), "exit_code": st.get("exit_code"), "log": st.get("log"),
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


def _follower(ctx: ToolContext, name: str) -> ProgressStream | None:
    """The job's progress follower, kept on the workspace between waits (a partial line, the
    experiment it is at, the throttle); None when the job does not exist."""
    follower = ctx.ws.job_followers.get(name)
    if follower is not None:
        return follower
    st = ctx.ws.job_status(name, 0)
    if not st.get("exists"):
        return None
    command = st.get("command") or ""
    experiments: list[str] = []
    if "reproduce.sh" in command:  # the experiments in the order the script runs them
        try:
            experiments = experiments_of(ctx.ws.read_text("reproduce.sh"))
        except Exception:  # noqa: BLE001 - no script to read: the lines still stream, unnamed
            experiments = []
    source = "smoke job" if is_smoke_run(command) else f"job {name}"
    progress = ctx.progress
    parser = ProgressLines(experiments, source=source, started=time.monotonic() - float(st.get("seconds") or 0.0))
    follower = ctx.ws.job_followers[name] = ProgressStream(parser, lambda ev: progress("progress", **ev))
    return follower


@handler("wait_job")
def wait_job(a: WaitJob, ctx: ToolContext) -> ToolResult:
    follower = _follower(ctx, a.name) if ctx.progress is not None else None
    if follower is None:
        st = ctx.ws.wait_job(a.name, a.seconds)
    else:
        st = ctx.ws.wait_job(a.name, a.seconds, on_output=lambda chunk: follower(1, chunk))
        if st.get("state") not in ("running", "starting"):  # the job ended: its last line, even without an end
            follower.close()
            ctx.ws.job_followers.pop(a.name, None)
    text = describe(st)
    if st.get("state") == "running":
        text += f"\n(still running after waiting {a.seconds} s; wait again or check later)"
    return ToolResult(text, ok=bool(st.get("exists")), meta=_meta(st))


@handler("stop_job")
def stop_job(a: StopJob, ctx: ToolContext) -> ToolResult:
    st = ctx.ws.stop_job(a.name)
    return ToolResult(describe(st), ok=bool(st.get("exists")), meta=_meta(st))
