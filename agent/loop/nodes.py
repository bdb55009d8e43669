"""The tool loop's nodes: ``model_step`` asks for the next tool calls, ``tool_step`` runs one call,
``route`` picks the next hop. Each is one LangGraph step, checkpointed before the next starts, so
a crash loses at most the call that was running — and a resumed run re-runs only that one.

Typed exits (``loop.exit``): submitted, steps, tokens, dollars, time, sandbox, malformed,
user_stop, context (the endpoint still found the request too long after one trimmed retry), stuck
(the same failing call again and again, agent/loop/spin.py). Every exit leads to the grading path
with whatever the workspace holds.
"""
from __future__ import annotations

import time
from pathlib import Path

from langgraph.graph import END
from langgraph.runtime import Runtime

from agent import budget
from agent.context import RunContext
from agent.loop import context as cx
from agent.llm import ContextLengthExceeded, prompt_tokens
from agent.loop import guide, spin, trajectory
from agent.plan import Plan
from agent.tools import ToolContext, ToolResult, manifest_hash, run_tool
from agent.tools.specs import CHANGES_FILES, tool_schemas
from agent.tools.submit import smoke_passed
from agent.usage import of, plus
from agent.workspace import Workspace
from papers.paper import Paper

STOP_FILE = "STOP"
MAX_REPLY_TOKENS = cx.REPLY_TOKENS
#: a re-ask after an unusable reply is sampled, not greedy: at temperature 0 the same prompt (plus a
#: one-line note) mostly yields the same unusable reply again, three times, and the loop ends
REASK_TEMPERATURE = 0.7


def workspace(ctx: RunContext) -> Workspace:
    """The run's workspace, opened (or re-attached after a resume) on first use."""
    if ctx.workspace is None:
        ctx.workspace = Workspace.open(ctx.sandbox_factory, ctx.config.run_dir, ctx.config.run_id)
    return ctx.workspace


def _paper(ctx: RunContext) -> Paper:
    cached = getattr(ctx, "paper_cache", None)
    if cached is None:
        cached = Paper.model_validate_json((ctx.config.run_dir / "paper.json").read_text())
        ctx.paper_cache = cached  # read once per process: the paper does not change during a run
    return cached


def run_usage(state: dict) -> dict:
    """Every agent-model call of the run: planning (state.usage) plus the loop's own."""
    return plus(state.get("usage"), (state.get("loop") or {}).get("usage"))


def _spent(state: dict, ctx: RunContext) -> budget.Spent:
    loop = state.get("loop") or {}
    view = {**state, "usage": run_usage(state), "sandbox_s": state.get("sandbox_s", 0.0) + loop.get("sandbox_s", 0.0)}
    return budget.loop_spent(view, ctx.config.budgets, ctx.model.name)


def _exit(state: dict, ctx: RunContext, *, between_calls: bool = False) -> tuple[str, str] | None:
    """Why the loop must end now, if it must. Between the calls of one reply the step budget does
    not count: that turn was allowed, its calls run (unless time, tokens or money ran out)."""
    if (ctx.config.run_dir / STOP_FILE).exists():
        return "user_stop", f"stopped by the user ({STOP_FILE} file in the run directory)"
    spent = _spent(state, ctx)
    if between_calls:
        spent = budget.Spent({k: v for k, v in spent.shares.items() if k != "steps"}, spent.detail)
    return spent.exceeded


def _embedded(ctx: RunContext) -> bool:
    return ctx.config.agent_model.embedded and not getattr(ctx.model, "native_tools", False)


def model_step(state: dict, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    loop = dict(state.get("loop") or {})
    hit = _exit(state, ctx)
    if hit:
        return {"loop": {"exit": hit[0], "exit_detail": hit[1]}}
    ws = workspace(ctx)
    plan = Plan.model_validate(state["plan"])
    paper = _paper(ctx)
    turn = loop.get("turn", 0) + 1
    spent = _spent(state, ctx)
    notes: list[str] = list(loop.get("feedback") or [])
    last = trajectory.load_turn(cfg.run_dir, turn - 1) if turn > 1 else None
    updates: dict = {"turn": turn, "feedback": []}
    temperature = 0.0
    if last is not None and not (last.get("reply") or {}).get("calls"):
        reason = last.get("reask")
        notes.append(f"Your last reply could not be used: {reason} Reply again, following the schema." if reason
                     else cx.NUDGE)
        updates["nudges"] = loop.get("nudges", 0) + (0 if reason else 1)
        temperature = REASK_TEMPERATURE if reason else 0.0
    elif last is not None and last.get("results") and all(r.get("malformed") for r in last["results"]):
        temperature = REASK_TEMPERATURE  # every call was unusable (unknown tool, bad arguments)
    elapsed = time.time() - loop.get("started_at", time.time())
    if turn > 1 and (turn - 1) % cfg.budgets.reminder_every == 0:
        notes.append(cx.reminder(turn, spent, cfg.budgets, elapsed))
        updates["reminders"] = loop.get("reminders", 0) + 1
    if spent.nearly and not loop.get("wrap_up_sent"):
        notes.append(cx.WRAP_UP)
        updates["wrap_up_sent"] = True
    guided = guide.enabled(cfg.guide, getattr(ctx.model, "weak", False))
    why = None
    if guided:
        running = ws.running_jobs()
        files_hash = manifest_hash(ws.manifest)
        tools, why = guide.menu(plan, loop, running, smoke_passed(loop, ws.manifest), files_hash,
                                "reproduce.sh" in ws.manifest)
    else:
        tools = tool_schemas()
    decider = guide.decided_by(tools)
    if decider == "guide":
        updates["guided"] = loop.get("guided", 0) + 1
    budget_text = (f"{cfg.budgets.max_steps} turns, {cfg.budgets.max_agent_s / 60:.0f} minutes"
                   + (f", ${cfg.budgets.max_dollars}" if cfg.budgets.max_dollars else ""))
    head = [cx.system_message(ctx.offline, brief=guided), cx.task_message(plan, paper, budget_text, brief=guided)]
    # the whole request as the model counts it (tool prompt, tool definitions, notes), within its
    # window less the completion reserve
    history = trajectory.turns(cfg.run_dir, turn - 1)
    count = lambda msgs: prompt_tokens(ctx.model, msgs, tools)  # noqa: E731
    scale = loop.get("context_scale", 1.0)
    budget = cx.prompt_budget(getattr(ctx.model, "context_tokens", None), MAX_REPLY_TOKENS, scale)
    messages, trimmed = cx.build_messages(head, history, notes, budget, count)
    ctx.progress("step", turn=turn, detail=why or "model")
    record = {"turn": turn, "at": time.time(), "notes": notes, "temperature": temperature,
              "menu": [t["name"] for t in tools], "guide": why, "options": len(tools), "decided_by": decider,
              "free_arguments": guide.free_arguments(tools[0]) if decider == "guide" else None,
              "trimmed": trimmed, "results": []}

    def ask(msgs):
        return ctx.model.complete(msgs, tools=tools, max_tokens=MAX_REPLY_TOKENS, temperature=temperature, seed=turn)

    try:
        comp = ask(messages)
    except ContextLengthExceeded as exc:
        # the endpoint counts more than we did: trim to what it says fits, and ask once more
        tighter = cx.retry_budget(budget, trimmed["tokens"], exc)
        messages, trimmed = cx.build_messages(head, history, notes, tighter, count)
        record.update(trimmed=trimmed, context_retry={"error": str(exc)[:500], "sent": record["trimmed"]["tokens"],
                                                      "budget": tighter})
        updates["context_scale"] = scale * tighter / budget  # later turns start from what fits
        try:
            comp = ask(messages)
        except ContextLengthExceeded as again:
            record["context_retry"]["error_again"] = str(again)[:500]
            record["reply"] = {"text": "", "calls": []}
            trajectory.save_turn(cfg.run_dir, record)
            updates.update(exit="context", exit_detail=(
                f"the model's context is full: the endpoint refused the request as too long, and again after one "
                f"retry trimmed to {trimmed['tokens']} prompt tokens ({str(again)[:240]})"))
            return {"pending": [], "loop": updates}
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments, "error": c.error} for c in comp.tool_calls]
    key = "guide_calls" if decider == "guide" else "model_calls"
    updates[key] = loop.get(key, 0) + len(calls)
    record.update(usage=of(comp), finish_reason=comp.finish_reason,
                  reply={"text": (comp.text or "")[:4000], "calls": calls})
    if not calls and _embedded(ctx):
        # a constrained endpoint that returned no usable JSON: a malformed reply, re-asked with why
        record["reask"] = ("it was cut off (too long)." if comp.finish_reason == "length"
                           else "it was not the JSON object the schema asks for.")
        updates["malformed"] = loop.get("malformed", 0) + 1
        updates["malformed_in_row"] = loop.get("malformed_in_row", 0) + 1
    trajectory.save_turn(cfg.run_dir, record)
    updates["usage"] = plus(loop.get("usage"), of(comp))
    if updates.get("malformed_in_row", 0) >= cfg.budgets.max_malformed_in_row:
        updates.update(exit="malformed", exit_detail=f"{updates['malformed_in_row']} malformed replies in a row")
    return {"pending": calls, "loop": updates}


def tool_step(state: dict, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    loop = dict(state.get("loop") or {})
    call, rest = state["pending"][0], state["pending"][1:]
    turn = loop.get("turn", 0)
    hit = _exit(state, ctx, between_calls=True)
    if hit:  # the budget ran out between calls of one reply: the rest are recorded as not run
        for c in [call] + rest:
            trajectory.add_result(cfg.run_dir, turn, {"id": c["id"], "name": c["name"], "arguments": c.get("arguments"),
                                                      "content": f"(not run: {hit[1]})", "ok": False, "seconds": 0.0})
        return {"pending": [], "loop": {"exit": hit[0], "exit_detail": hit[1]}}
    ws = workspace(ctx)
    plan = Plan.model_validate(state["plan"])
    files_before = loop.get("files_hash") or manifest_hash(ws.manifest)
    ctx.progress("tool", turn=turn, name=call["name"], detail=_brief(call))
    t0 = time.monotonic()
    if call.get("error"):
        result = ToolResult(f"error: {call['error']}. Call a tool from the list with valid JSON arguments.",
                            ok=False, malformed=True)
    else:
        tctx = ToolContext(ws=ws, plan=plan, paper=_paper(ctx), run_dir=cfg.run_dir, step=turn,
                           call_id=f"t{turn:04d}-{call['id'][-12:]}".replace("/", "-"), loop=loop,
                           nearly_spent=_spent(state, ctx).nearly, broker=ctx.broker,
                           progress=ctx.progress)
        result = run_tool(call["name"], call.get("arguments"), tctx)
    seconds = time.monotonic() - t0
    changes = ws.sync(step=turn) if call["name"] in CHANGES_FILES else None
    updates: dict = dict(result.updates)
    updates["files_hash"] = manifest_hash(ws.manifest)
    updates["tool_calls"] = loop.get("tool_calls", 0) + 1
    smoke = _smoke(call, result, loop, files_before)
    last_smoke = smoke or loop.get("smoke") or {}
    if call["name"] in ("job_status", "read_file") and result.ok and last_smoke.get("passed") is False:
        smoke = {**last_smoke, "log_read": True}  # the guide offers editing once the failure was read
    if smoke is not None:
        updates["smoke"] = smoke
    if call["name"] in ("bash", "wait_job"):
        updates["sandbox_s"] = loop.get("sandbox_s", 0.0) + seconds
    trajectory.add_result(cfg.run_dir, turn, {
        "id": call["id"], "name": call["name"], "arguments": call.get("arguments"), "content": result.content,
        "ok": result.ok, "malformed": result.malformed, "meta": result.meta, "seconds": round(seconds, 2),
        "changes": changes, "at": time.time()})
    # malformed replies in a row: judged once per reply, when its last call has run
    record = trajectory.load_turn(cfg.run_dir, turn) or {}
    if not rest:
        bad = any(r.get("malformed") for r in record.get("results", []))
        updates["malformed"] = loop.get("malformed", 0) + sum(1 for r in record.get("results", []) if r.get("malformed"))
        updates["malformed_in_row"] = loop.get("malformed_in_row", 0) + 1 if bad else 0
        if updates["malformed_in_row"] >= cfg.budgets.max_malformed_in_row:
            updates.update(exit="malformed", exit_detail=f"{updates['malformed_in_row']} malformed replies in a row")
    # the same call after the same failure: quote the failure, then end the loop (exit "stuck")
    failure = (spin.quote(_failure_lines(ws, result))
               if not call.get("error") and spin.failed(result.ok, result.malformed, result.meta) else None)
    repeat = updates["repeat"] = spin.track(loop.get("repeat"), call, failure)
    limit = cfg.budgets.max_repeats_in_row
    if 2 <= repeat["count"] < limit:
        updates["feedback"] = list(updates.get("feedback", loop.get("feedback")) or []) + [
            spin.note(call, repeat["count"], failure, limit)]
    if repeat["count"] >= limit:
        updates.update(exit="stuck", exit_detail=(
            f"{repeat['count']} identical failing calls in a row ({call['name']} {_brief(call)}); the last lines: "
            f"{failure.splitlines()[-1][:200]}"))
        rest = []
    if "submitted" in updates:
        updates.update(exit="submitted", exit_detail=(updates["submitted"] or {}).get("note", "")[:300])
        rest = []
    return {"pending": rest, "loop": updates, "files": dict(ws.manifest)}


def _smoke(call: dict, result: ToolResult, loop: dict, files_before: str) -> dict | None:
    """A finished smoke run of reproduce.sh: by bash (for the files as they were), or a smoke job
    seen ended by wait_job/job_status (for the files as they were when it started)."""
    meta = result.meta or {}
    if not meta.get("smoke"):
        return None
    if call["name"] == "bash":
        return {"passed": result.ok, "files": files_before, "how": "bash", "returncode": meta.get("returncode")}
    if meta.get("state") in ("succeeded", "failed", "stopped"):
        started = (loop.get("job_files") or {}).get(meta.get("job"))
        return {"passed": meta.get("state") == "succeeded", "files": started, "how": f"job {meta.get('job')}",
                "returncode": meta.get("exit_code"), "job": meta.get("job"), "log": meta.get("log")}
    return None


def _failure_lines(ws: Workspace, result: ToolResult) -> list[str]:
    """What a failure note quotes: the last lines of the job's log for a job, else of the output."""
    job = (result.meta or {}).get("job")
    if job:
        try:
            tail = ws.job_status(job, spin.QUOTE_LINES).get("tail")
            if tail:
                return list(tail)
        except Exception:  # noqa: BLE001 - the note falls back on what the call returned
            pass
    return result.content.splitlines()


def _brief(call: dict) -> str:
    a = call.get("arguments") or {}
    for key in ("command", "path", "name", "recipe", "text", "id", "pattern"):
        if key in a:
            return f"{key}={str(a[key])[:80]!r}"
    return ""


def route(state: dict) -> str:
    if state.get("pending"):
        return "tools"
    if (state.get("loop") or {}).get("exit"):
        return END
    return "model"


def stop_file(run_dir: Path) -> Path:
    return Path(run_dir) / STOP_FILE
