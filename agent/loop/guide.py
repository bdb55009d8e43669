"""The guide: for weak models, the code decides the next tool call from the workspace's state.

A 135M-parameter model cannot plan a replication. Each guided turn offers exactly one tool, its
choosing arguments fixed to one value each (an enum), and the grammar forces one call: scaffold the
next planned experiment that has a recipe, smoke-test reproduce.sh as a job, wait for it, submit.
On those turns the guide decides the call; the model only fills the free arguments (how long to
wait, the submit note) and a bounded thought. When no recipe fits, the menu opens to every tool
and the call is the model's. When the smoke run fails, the guide first offers reading its log
(job_status with a tail, read_file on the log), then the tools that edit files; once the files
changed, the smoke run again. Each turn records how many tools it offered and
who decided; the report gives the run's total ("the guide decided 6 of 6 calls").
"""
from __future__ import annotations

from agent.plan import Plan
from agent.tools.specs import SPECS, tool_schema

SMOKE_COMMAND = "REPRO_SMOKE=1 bash reproduce.sh"
#: log lines job_status shows after a failed smoke run (a traceback and what led to it)
LOG_TAIL = 80
#: after a failed smoke run and its log: the tools that read and fix files (a change of the
#: files brings the smoke run back to the menu)
EDIT_TOOLS = ["read_file", "search", "edit_file", "write_file", "bash", "paper_section", "paper_table"]


def enabled(mode: str, weak_model: bool) -> bool:
    """"auto": on for a model that says it is weak (the embedded SmolLM2)."""
    return mode == "on" or (mode == "auto" and weak_model)


def decided_by(tools: list[dict]) -> str:
    """Who chose a turn's call: 'guide' when its menu is one tool (the guide narrows every choosing
    argument of it to one value), 'model' when the menu offers a real choice."""
    return "guide" if len(tools) == 1 else "model"


def free_arguments(tool: dict) -> list[str]:
    """The arguments of a one-tool menu the model still fills (not narrowed to a single value)."""
    props = tool["parameters"].get("properties", {})
    return [k for k, v in props.items() if not (isinstance(v.get("enum"), list) and len(v["enum"]) == 1)]


def _smoke_name(loop: dict) -> str:
    used = set((loop.get("job_files") or {}))
    n = 1
    while (f"smoke-{n}" if n > 1 else "smoke") in used:
        n += 1
    return f"smoke-{n}" if n > 1 else "smoke"


def menu(plan: Plan, loop: dict, running: list[str], smoke_ok: bool, files_hash: str,
         has_reproduce: bool) -> tuple[list[dict], str]:
    """(tool schemas to offer, the guide's one-line reason) for this turn."""
    todo = [e for e in plan.experiments if e.recipe and e.id not in (loop.get("scaffolded_experiments") or [])]
    if running:
        return [tool_schema("wait_job", narrow={"name": running[:1]})], f"job {running[0]} runs: wait for it"
    if todo:
        e = todo[0]
        return ([tool_schema("scaffold", narrow={"recipe": [e.recipe], "experiment": [e.id]})],
                f"experiment {e.id} has a recipe and is not scaffolded yet")
    smoke = loop.get("smoke") or {}
    if not has_reproduce:
        return [tool_schema(n) for n in SPECS], "no experiment has a recipe: every tool is open to write the code"
    if smoke_ok:
        return [tool_schema("submit")], "reproduce.sh passed its smoke run on these files: submit"
    if not smoke or smoke.get("files") != files_hash:  # never smoke-tested, or the files changed since
        name = _smoke_name(loop)
        return ([tool_schema("start_job", narrow={"name": [name], "command": [SMOKE_COMMAND]})],
                "every recipe experiment is scaffolded: smoke-test reproduce.sh" if not smoke
                else "the files changed since the last smoke run: smoke-test reproduce.sh again")
    # the smoke run failed on these very files: read why first, then edit (never the same run again)
    job = smoke.get("job")
    if job and not smoke.get("log_read"):
        read = [tool_schema("job_status", narrow={"name": [job], "tail": [LOG_TAIL]})]
        if smoke.get("log"):
            read.append(tool_schema("read_file", narrow={"path": [smoke["log"]]}))
        return read, f"the smoke run ({job}) failed: read its log first"
    return [tool_schema(n) for n in EDIT_TOOLS], "the smoke run failed and its log was read: fix the files"
