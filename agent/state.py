"""What is checkpointed: small, serialisable facts. Big artifacts live on disk in the run dir."""
from __future__ import annotations

from typing import Any, TypedDict


class RunState(TypedDict, total=False):
    run_id: str
    status: str  # running | done | stopped | failed
    stop_reason: str | None
    started_at: float
    paper: dict[str, Any]  # title, sha256, pages, counts, warnings (full Paper in paper.json)
    plan: dict[str, Any]  # agent.plan.Plan dump
    files: dict[str, str]  # submission path -> sha256
    execution: dict[str, Any]  # last smoke run: returncode, summary, log path
    debug_iterations: int
    debug_log: list[dict[str, Any]]
    reproduction: dict[str, Any]  # returncode, summary, start_time, duration, results
    grade: dict[str, Any]  # score, coverage, judge model, rubric source
    report: dict[str, str]  # format -> path
    usage: dict[str, int]  # prompt_tokens, completion_tokens, calls, reasks
    sandbox_s: float  # seconds spent in sandbox commands (budgeted)
    review: dict[str, Any]  # review gate: stage, round, last action, next hop, feedback, history
    node_log: list[str]  # nodes completed, in order (for resume tests and the report)
