"""Human review of a paused run, kept as two small JSON files in the run directory.

The graph (or whatever pauses it) writes a *request*; a person answers with a *decision*
through `repro review` or the web UI (`repro serve`); the graph reads the decision when it
resumes and archives both. Files, not a database, so every tool — CLI, web, a LangGraph
interrupt handler — shares one plain contract and a crash loses nothing:

    runs/<id>/review/request.json   {"id", "stage", "summary", "details", "requested_at"}
    runs/<id>/review/decision.json  {"request_id", "action": "approve"|"feedback",
                                     "feedback", "who", "at"}
    runs/<id>/review/history/<n>.json  a consumed {"request", "decision"} pair

A run is *paused for review* while request.json exists and no decision answers it.
"""
from __future__ import annotations

import getpass
import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ACTIONS = ("approve", "feedback")
MAX_FEEDBACK_CHARS = 20_000


class ReviewError(ValueError):
    """A review action that cannot be taken (no pending request, empty feedback...)."""


def _dir(run_dir: Path) -> Path:
    return Path(run_dir) / "review"


def _write(path: Path, obj: dict) -> None:
    # temp file + rename: a reader never sees half a decision.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_reviewer() -> str:
    return os.environ.get("REPRO_REVIEWER") or getpass.getuser()


def request_review(run_dir: Path, *, stage: str, summary: str, details: dict | None = None) -> dict:
    """Pause point: ask a person to look at ``stage`` (e.g. "plan"). Replaces any old request."""
    req = {"id": secrets.token_hex(6), "stage": stage, "summary": summary, "details": details or {},
           "requested_at": now_iso()}
    decision = _dir(run_dir) / "decision.json"
    if decision.exists():
        decision.unlink()  # a decision answers one request only
    _write(_dir(run_dir) / "request.json", req)
    return req


def read_request(run_dir: Path) -> dict | None:
    return _read(_dir(run_dir) / "request.json")


def read_decision(run_dir: Path) -> dict | None:
    """The decision answering the current request, or None."""
    req, dec = read_request(run_dir), _read(_dir(run_dir) / "decision.json")
    if not req or not dec or dec.get("request_id") != req.get("id"):
        return None
    return dec


def pending_review(run_dir: Path) -> dict | None:
    """The request a person still has to answer, or None."""
    req = read_request(run_dir)
    return req if req and read_decision(run_dir) is None else None


def record_decision(run_dir: Path, action: str, feedback: str = "", who: str | None = None) -> dict:
    """Answer the pending request. ``feedback`` is required with action "feedback"."""
    if action not in ACTIONS:
        raise ReviewError(f"unknown review action {action!r}; expected one of {', '.join(ACTIONS)}")
    feedback = (feedback or "").strip()
    if action == "feedback" and not feedback:
        raise ReviewError("feedback is empty: write what the agent should change")
    if len(feedback) > MAX_FEEDBACK_CHARS:
        raise ReviewError(f"feedback is longer than {MAX_FEEDBACK_CHARS} characters")
    req = pending_review(run_dir)
    if req is None:
        raise ReviewError("this run is not waiting for a review (no pending request, or already answered)")
    dec = {"request_id": req["id"], "action": action, "feedback": feedback,
           "who": (who or "").strip() or default_reviewer(), "at": now_iso()}
    _write(_dir(run_dir) / "decision.json", dec)
    return dec


def consume_decision(run_dir: Path) -> dict | None:
    """For the resuming graph: return the decision and archive the request/decision pair."""
    dec = read_decision(run_dir)
    if dec is None:
        return None
    d = _dir(run_dir)
    hist = d / "history"
    n = len(list(hist.glob("*.json"))) if hist.exists() else 0
    _write(hist / f"{n:03d}.json", {"request": read_request(run_dir), "decision": dec})
    (d / "decision.json").unlink()
    (d / "request.json").unlink()
    return dec
