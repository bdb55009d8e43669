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
# The graph's main path, in order (debug is a loop, not a step, so it is left out of the count).
STEPS = ("ingest", "plan", "implement", "execute", "reproduce", "grade", "report")


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


def status_of(d: Path) -> str:
    if review_store.pending_review(d):
        return "paused for review"
    report = _json(d / "report.json")
    if report:
        return report.get("status") or "done"
    if (d / "failure.json").exists():
        return "failed"
    return "running"


def summary(d: Path) -> dict:
    cfg = _json(d / "run.json") or {}
    report = _json(d / "report.json") or {}
    grade, cost = report.get("grade") or {}, report.get("cost") or {}
    status = status_of(d)
    row = {
        "run_id": d.name,
        "paper": (report.get("paper") or {}).get("title") or Path(str(cfg.get("paper_path", "?"))).name,
        "status": status,
        "score": grade.get("score"),
        "judge_score": grade.get("judge_score"),
        "coverage": grade.get("coverage"),
        "overridden": len(grade.get("overridden_leaves") or []),
        "dollars": cost.get("dollars"),
        "tokens": (cost.get("agent_tokens") or 0) + (cost.get("judge_tokens") or 0) if cost else None,
        "started": datetime.fromtimestamp((d / "run.json").stat().st_mtime).isoformat(sep=" ", timespec="seconds"),
    }
    if status in ("running", "paused for review"):
        row["progress"] = progress(d)
    return row


def list_summaries(runs_dir: Path) -> list[dict]:
    """Every run, newest first."""
    dirs = [p.parent for p in Path(runs_dir).glob("*/run.json") if RUN_ID.match(p.parent.name)]
    dirs.sort(key=lambda d: (d / "run.json").stat().st_mtime, reverse=True)
    return [summary(d) for d in dirs]


def _checkpoint_values(d: Path) -> tuple[dict, str | None]:
    """The latest checkpointed state (read-only) and its timestamp; ({}, None) if there is none yet."""
    db = d / "checkpoints.sqlite"
    if not db.exists():
        return {}, None
    try:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            row = conn.execute("SELECT type, checkpoint FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                               "ORDER BY checkpoint_id DESC LIMIT 1", (d.name,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}, None  # a writer holds the lock, or the schema is not there yet: try next poll
    if not row:
        return {}, None
    ck = JsonPlusSerializer().loads_typed((row[0], row[1]))
    return ck.get("channel_values") or {}, ck.get("ts")


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


def progress(d: Path) -> dict:
    values, ts = _checkpoint_values(d)
    done = [n for n in values.get("node_log") or [] if n in STEPS]
    current = next((s for s in STEPS if s not in done), None)
    log_name, tail = _log_tail(d)
    return {"status": status_of(d), "done": done, "current": current, "steps": list(STEPS),
            "fraction": round(len(set(done)) / len(STEPS), 3), "debug_iterations": values.get("debug_iterations", 0),
            "checkpoint_at": ts, "log": log_name, "log_tail": tail, "review": review_store.pending_review(d)}
