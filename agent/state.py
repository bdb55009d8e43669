"""What is checkpointed: small, serialisable, typed records. Big artifacts live on disk in the run
dir (the loop's conversation in trajectory/, file versions in blobs/). Channels with a reducer
take deltas: a node returns only what it adds (``node_log: ["plan"]``, ``usage: <this node's>``)."""
from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from agent.usage import plus


def merge(old: dict | None, new: dict | None) -> dict:
    """Shallow merge: a node returns only the keys of a record it changes."""
    return {**(old or {}), **(new or {})}


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    calls: int
    reasks: int


class PendingCall(TypedDict, total=False):
    id: str
    name: str
    arguments: dict[str, Any] | None
    error: str | None  # why the call is unusable (unknown tool, arguments not JSON)


class LoopRecord(TypedDict, total=False):
    """The tool loop's counters and facts (agent/loop). ``turn`` counts model replies."""

    turn: int
    started_at: float
    tool_calls: int
    malformed: int
    malformed_in_row: int
    nudges: int
    reminders: int
    usage: Usage  # the loop's own model usage (also summed into RunState.usage)
    files_hash: str  # the submission's files as last synced
    scaffolded: dict[str, dict]  # path -> {recipes, step, sha256} as the scaffold wrote it
    scaffolded_experiments: list[str]
    job_files: dict[str, str]  # job name -> files hash when it started
    smoke: dict  # {passed, files, step, command}: the last smoke run of reproduce.sh
    submitted: dict | None  # {note, step, forced}
    exit: str | None  # submitted | steps | tokens | dollars | time | sandbox | malformed | user_stop | context | stuck
    exit_detail: str
    guided: int  # turns whose call the guide decided (a one-tool menu)
    guide_calls: int  # tool calls the guide decided
    model_calls: int  # tool calls the model chose from a menu of several tools
    feedback: list[str]  # notes not yet shown to the model (reviewer feedback, a repeated failure)
    repeat: dict  # {signature, failure, count}: identical failing calls in a row (agent/loop/spin.py)
    context_scale: float  # < 1 after an endpoint counted a request longer than we did (its retry)


class RunState(TypedDict, total=False):
    run_id: str
    status: str  # running | done | stopped | failed
    stop_reason: str | None
    started_at: float
    paper: dict[str, Any]  # title, sha256, pages, counts, warnings (full Paper in paper.json)
    plan: dict[str, Any]  # agent.plan.Plan dump
    files: dict[str, str]  # submission path -> sha256 (as synced from the workspace)
    pending: list[PendingCall]  # tool calls of the last model reply not yet run
    loop: Annotated[LoopRecord, merge]
    reproduction: dict[str, Any]  # returncode, summary, start_time, duration, results
    grade: dict[str, Any]  # score, coverage, judge model, rubric source
    report: dict[str, str]  # format -> path
    usage: Annotated[Usage, plus]  # every agent-model call (planning and the loop)
    sandbox_s: Annotated[float, operator.add]  # seconds spent in sandbox commands (budgeted)
    review: Annotated[dict[str, Any], merge]  # review gate: stage, next hop, feedback, history
    node_log: Annotated[list[str], operator.add]  # nodes completed, in order (resume tests, the report)
