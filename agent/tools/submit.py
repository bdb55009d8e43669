"""submit: the workspace becomes the submission — refused while jobs run or before a smoke run."""
from __future__ import annotations

from agent.tools import ToolContext, ToolResult, handler, manifest_hash
from agent.tools.specs import Submit


def smoke_passed(loop: dict, manifest: dict[str, str]) -> bool:
    smoke = loop.get("smoke") or {}
    return bool(smoke.get("passed")) and smoke.get("files") == manifest_hash(manifest)


@handler("submit")
def submit(a: Submit, ctx: ToolContext) -> ToolResult:
    running = ctx.ws.running_jobs()
    if running:
        return ToolResult(f"refused: job(s) {running} still run. Wait for them (wait_job) or stop them (stop_job), "
                          "then submit.", ok=False, meta={"refused": "jobs running"})
    if "reproduce.sh" not in ctx.ws.manifest:
        if not ctx.nearly_spent:
            return ToolResult("refused: there is no reproduce.sh at the workspace root. Write it (or scaffold a "
                              "recipe), smoke-test it with start_job(name=\"smoke\", command=\"REPRO_SMOKE=1 bash "
                              "reproduce.sh\"), then submit.", ok=False, meta={"refused": "no reproduce.sh"})
    elif not smoke_passed(ctx.loop, ctx.ws.manifest) and not ctx.nearly_spent:
        smoke = ctx.loop.get("smoke") or {}
        why = ("the last smoke run failed" if smoke and not smoke.get("passed") else
               "the files changed since the last smoke run" if smoke else "reproduce.sh has not had a smoke run")
        return ToolResult(f"refused: {why}. Run `REPRO_SMOKE=1 bash reproduce.sh` (start_job(name=\"smoke-2\", "
                          "...) or bash) until it exits 0, then submit.", ok=False, meta={"refused": why})
    forced = ctx.nearly_spent and not smoke_passed(ctx.loop, ctx.ws.manifest)
    return ToolResult("submitted" + (" (without a passing smoke run: the budget is nearly spent)" if forced else ""),
                      meta={"submitted": True, "forced": forced},
                      updates={"submitted": {"note": a.note, "step": ctx.step, "forced": forced}})
