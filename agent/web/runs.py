"""Read run directories for the web UI: status, score, cost, live progress. Read-only.

Runs are plain directories (run.json, report.json, checkpoints.sqlite, review/), so the UI
works on a run that another process is writing; it never opens the checkpoint for writing.
"""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path

from agent import review_store

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The graph's main path, in order (agent/graph.py). review_plan / review_code run only when a
# person reviews, and "code" is the coding agent's tool loop: its turns are reported apart.
STEPS = ("ingest", "plan", "code", "reproduce", "grade", "report")
LOOP_KEYS = ("turn", "tool_calls", "malformed", "nudges", "guided", "exit", "exit_detail")
LOOP_RUNNING = "__loop_running__"


class RunNotFound(LookupError):
    """No such run under the runs directory (or a run id that could never be one)."""


def run_path(runs_dir: Path, run_id: str) -> Path:
    """The run's directory; the id is checked first so it can never walk out of runs_dir."""
    if not RUN_ID.match(run_id or ""):
        raise RunNotFound(f"{run_id!r} is not a run id")
    d = Path(runs_dir) / run_id
    if not (d / "run.json").is_file():
        raise RunNotFound(f"there is no run {run_id!r} in {runs_dir}")
    return d


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def answered_review(d: Path) -> dict | None:
    """The decision a person gave the current pause (web UI or CLI) while the run has not picked
    it up yet: the runner reads it only when the run is resumed."""
    pending, decision = review_store.read_pending(d), review_store.read_decision(d)
    if pending is None or decision is None:
        return None
    return {"stage": decision.get("stage"), "action": decision.get("action"), "who": decision.get("who"),
            "at": decision.get("at"), "resume": f"repro run --resume {d.name} --runs-dir {d.parent}"}


def _resumed_since(d: Path, at: float | None) -> bool:
    """Whether the graph checkpointed after ``at``: a resumed run is working on the decision."""
    _, ts = checkpoint_values(d)
    try:
        return bool(ts and at) and datetime.fromisoformat(ts).timestamp() > float(at)
    except (TypeError, ValueError):
        return False


def status_of(d: Path) -> str:
    if review_store.pending_review(d):
        return "paused for review"
    report = _json(d / "report.json")
    if report:
        return report.get("status") or "done"
    if (d / "failure.json").exists():
        return "failed"
    answered = answered_review(d)
    if answered and not _resumed_since(d, answered["at"]):
        return "waiting to resume"
    return "running"


def _paper_title(d: Path) -> str | None:
    """The title ingest read from the PDF (paper.json), for a run that has no report yet."""
    return (_json(d / "paper.json") or {}).get("title") if (d / "paper.json").is_file() else None


def summary(d: Path) -> dict:
    cfg = _json(d / "run.json") or {}
    report = _json(d / "report.json") or {}
    grade, cost = report.get("grade") or {}, report.get("cost") or {}
    status = status_of(d)
    row = {
        "run_id": d.name,
        "paper": ((report.get("paper") or {}).get("title") or _paper_title(d)
                  or Path(str(cfg.get("paper_path", "?"))).name),
        "status": status,
        "score": grade.get("score"),
        "judge_score": grade.get("judge_score"),
        "coverage": grade.get("coverage"),
        "overridden": len(grade.get("overridden_leaves") or []),
        "dollars": cost.get("dollars"),
        "tokens": (cost.get("agent_tokens") or 0) + (cost.get("judge_tokens") or 0) if cost else None,
        "started": datetime.fromtimestamp((d / "run.json").stat().st_mtime).isoformat(sep=" ", timespec="seconds"),
    }
    if status in ("running", "paused for review", "waiting to resume"):
        row["progress"] = progress(d)
    return row


def list_summaries(runs_dir: Path) -> list[dict]:
    """Every run, newest first."""
    dirs = [p.parent for p in Path(runs_dir).glob("*/run.json") if RUN_ID.match(p.parent.name)]
    dirs.sort(key=lambda d: (d / "run.json").stat().st_mtime, reverse=True)
    return [summary(d) for d in dirs]


def checkpoint_values(d: Path) -> tuple[dict, str | None]:
    """The latest checkpointed state (read-only) and its timestamp; ({}, None) if there is none yet.

    While the coding agent's loop runs, the graph's own checkpoint still holds the ``loop`` record
    of when the loop started: the loop (a subgraph) checkpoints each of its steps in its own
    namespace (``code:<task>``). Its ``loop`` is taken when that checkpoint is the newer one, and
    ``values[LOOP_RUNNING]`` says so (after a reviewer's feedback on the code, "code" is in the
    node log already while the loop runs again).
    """
    db = d / "checkpoints.sqlite"
    if not db.exists():
        return {}, None
    query = ("SELECT checkpoint_id, type, checkpoint FROM checkpoints WHERE thread_id = ? AND {} "
             "ORDER BY checkpoint_id DESC LIMIT 1")
    try:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            main = conn.execute(query.format("checkpoint_ns = ''"), (d.name,)).fetchone()
            sub = conn.execute(query.format("checkpoint_ns LIKE 'code:%'"), (d.name,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}, None  # a writer holds the lock, or the schema is not there yet: try next poll
    if not main:
        return {}, None
    serde = JsonPlusSerializer()
    ck = serde.loads_typed((main[1], main[2]))
    values, ts = dict(ck.get("channel_values") or {}), ck.get("ts")
    if sub and sub[0] > main[0]:  # checkpoint ids sort by time (uuid6)
        sub_ck = serde.loads_typed((sub[1], sub[2]))
        live = (sub_ck.get("channel_values") or {}).get("loop")
        if isinstance(live, dict):
            values["loop"] = live
            values[LOOP_RUNNING] = True
            ts = sub_ck.get("ts") or ts
    return values, ts


def _log_tail(d: Path, lines: int = 6) -> tuple[str | None, list[str]]:
    logs = [p for p in (d / "logs").glob("*.log") if p.name != "embedded-llm.log"] if (d / "logs").is_dir() else []
    if not logs:
        return None, []
    newest = max(logs, key=lambda p: p.stat().st_mtime)
    with newest.open("rb") as f:
        f.seek(max(0, newest.stat().st_size - 4000))
        text = f.read().decode("utf-8", errors="replace")
    # progress bars redraw with \r: keep only what the last redraw shows
    tail = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines() if ln.strip()]
    return newest.name, tail[-lines:]


def loop_progress(values: dict) -> dict | None:
    loop = values.get("loop")
    if not isinstance(loop, dict) or not loop.get("started_at") and not loop.get("turn"):
        return None
    return {k: loop.get(k) for k in LOOP_KEYS}


def _brief(pending: dict | None) -> dict | None:
    # polled every two seconds: the pause's plan and diff stay on the run page
    return {k: pending.get(k) for k in ("stage", "round", "id", "at")} if pending else None


def progress(d: Path) -> dict:
    values, ts = checkpoint_values(d)
    done = list(dict.fromkeys(n for n in values.get("node_log") or [] if n in STEPS))  # a re-plan runs plan twice
    current = "code" if values.get(LOOP_RUNNING) else next((s for s in STEPS if s not in done), None)
    log_name, tail = _log_tail(d)
    return {"status": status_of(d), "done": done, "current": current, "steps": list(STEPS),
            "fraction": round(len(done) / len(STEPS), 3), "loop": loop_progress(values),
            "checkpoint_at": ts, "log": log_name, "log_tail": tail, "review": _brief(review_store.pending_review(d)),
            "decision": answered_review(d)}
