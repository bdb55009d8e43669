"""bash: a fresh command in the workspace, killed with everything it started at its timeout."""
from __future__ import annotations

import re

from agent.tools import ToolContext, ToolResult, handler
from agent.tools.specs import Bash

SMOKE = re.compile(r"REPRO_SMOKE=1\b[^;&|]*\breproduce\.sh\b")


def is_smoke_run(command: str) -> bool:
    """A command that runs reproduce.sh in smoke mode (what `submit` asks to have passed)."""
    return bool(SMOKE.search(command))


@handler("bash")
def bash(a: Bash, ctx: ToolContext) -> ToolResult:
    out = ctx.ws.bash(a.command, a.timeout, ctx.call_id)
    i = out.info
    if i["timed_out"]:
        status = f"[timed out after {a.timeout} s: the command and every process it started were killed; " \
                 "use start_job for long work]"
    else:
        status = f"[exit code {i['returncode']} after {i['seconds']} s]"
    if i.get("leftovers_killed"):
        status += (f" [{i['leftovers_killed']} background process(es) it left were stopped: "
                   "use start_job for work that should keep running]")
    text = (out.text.rstrip("\n") + "\n" if out.text.strip() else "(no output)\n") + status
    ok = i["returncode"] == 0 and not i["timed_out"]
    return ToolResult(text, ok=ok, meta={"returncode": i["returncode"], "seconds": i["seconds"],
                                         "timed_out": i["timed_out"], "bytes": i["bytes"], "log": i["log"],
                                         "smoke": is_smoke_run(a.command)})
