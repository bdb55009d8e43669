"""The coding agent's tools: ``run_tool(name, args, ctx)`` validates the arguments against
agent/tools/specs.py and runs the handler; every answer is text the model reads.

A tool never raises for something the model did wrong (bad arguments, a missing file, a command
that fails): the result says what went wrong and ``malformed`` marks calls that were not even
valid, which the loop counts. Workspace or sandbox failures the model cannot fix do raise.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from agent.plan import Plan
from agent.tools.specs import SPECS, Args
from agent.workspace import Workspace, WorkspaceError
from papers.paper import Paper


@dataclass
class ToolContext:
    ws: Workspace
    plan: Plan
    paper: Paper
    run_dir: Path
    step: int
    call_id: str
    #: the loop's record (agent.state.LoopRecord): scaffolds, smoke status, job manifests
    loop: dict
    #: True when little budget is left: submit is then allowed without a passing smoke run
    nearly_spent: bool = False
    #: the run's asset broker (sandbox.broker.Broker); None: no assets beyond the image's
    broker: Any = None
    #: the run's progress callback (agent.context.RunContext.progress): wait_job streams a job's
    #: progress lines to it while it waits; None: nothing is streamed
    progress: Callable[..., None] | None = None


@dataclass
class ToolResult:
    content: str
    ok: bool = True
    malformed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    #: changes to the loop record (merged by the tool node)
    updates: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Any, ToolContext], ToolResult]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return wrap


def run_tool(name: str, args: dict | None, ctx: ToolContext) -> ToolResult:
    spec = SPECS.get(name)
    if spec is None:
        return ToolResult(f"error: there is no tool named {name!r}; the tools are {sorted(SPECS)}", ok=False,
                          malformed=True)
    try:
        parsed: Args = spec.model_validate(args or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()[:4])
        return ToolResult(f"error: bad arguments for {name}: {problems}. Call it again with valid arguments.",
                          ok=False, malformed=True)
    try:
        return HANDLERS[name](parsed, ctx)
    except WorkspaceError as exc:
        return ToolResult(f"error: {exc}", ok=False)


# The notes the agent is asked to keep current: editing them changes nothing reproduce.sh runs, so
# they neither stale a passing smoke run nor count as a change of the code.
NOTES_FILE = "NOTES.md"


def manifest_hash(manifest: dict[str, str]) -> str:
    """The hash of the code: every workspace file but the notes."""
    code = sorted((k, v) for k, v in manifest.items() if k != NOTES_FILE)
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()[:16]


# the handlers register themselves
from agent.tools import assets, files, jobs, paper, shell, submit  # noqa: E402,F401

__all__ = ["HANDLERS", "ToolContext", "ToolResult", "manifest_hash", "run_tool"]
