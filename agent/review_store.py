"""The review gate's files: how a person (CLI or web UI) answers a paused run.

Layout under ``runs/<id>/review/``:

* ``pending.json``  written by the runner when the graph pauses (LangGraph ``interrupt``):
  ``{"stage": "plan"|"code", "round": n, "plan": {...}, "files": [...], "diff": "...", "at": t}``
* ``decision.json`` written by the reviewer (``repro review`` or the web UI), read once on resume:
  ``{"stage": ..., "action": "approve"}``
  ``{"stage": "plan", "action": "edit", "plan": {<agent.plan.Plan fields>}}``
  ``{"stage": "code", "action": "edit", "files": {"train.py": "<new content>"}}``
  ``{"stage": ..., "action": "feedback", "text": "use 3 epochs"}``  (the agent re-plans / revises)
* ``history/NNN-<stage>.json`` every consumed decision, in order; ``snapshot/`` the submission
  at the last pause (what ``diff`` is computed against).

All writes are atomic (temp file + rename). Writing a decision does not resume the run:
call ``agent.runner.execute_run(cfg, resume=True)`` (``repro review`` does) afterwards.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, model_validator

from graders.files import write_json

Stage = Literal["plan", "code"]
Action = Literal["approve", "edit", "feedback"]


class ReviewDecision(BaseModel):
    stage: Stage
    action: Action
    plan: dict | None = None
    files: dict[str, str] | None = None
    text: str | None = None
    round: int | None = None
    """Which pause this answers (copied from pending.json); a stale decision is never applied."""

    @model_validator(mode="after")
    def _complete(self) -> "ReviewDecision":
        if self.action == "feedback" and not (self.text or "").strip():
            raise ValueError("feedback needs a non-empty text")
        if self.action == "edit" and self.stage == "plan" and not self.plan:
            raise ValueError("editing the plan needs the edited plan")
        if self.action == "edit" and self.stage == "code" and not self.files:
            raise ValueError("editing the code needs the edited files")
        if self.files:
            for rel in self.files:
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise ValueError(f"file path must stay inside the submission: {rel!r}")
        return self


def review_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "review"


def _write(path: Path, obj: dict) -> None:
    write_json(path, obj)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


class ReviewError(ValueError):
    """A decision that does not fit the pause (none pending, wrong stage, empty feedback, answered)."""


def write_pending(run_dir: Path, pending: dict) -> dict:
    """Open a pause (the runner does this). A new pause makes any older decision stale."""
    import uuid

    req = {**pending, "id": pending.get("id") or uuid.uuid4().hex[:12], "at": time.time()}
    _write(review_dir(run_dir) / "pending.json", req)
    return req


def read_pending(run_dir: Path) -> dict | None:
    """What the paused run waits for (answered or not), or None when it is not paused for review."""
    return _read(review_dir(run_dir) / "pending.json")


read_request = read_pending


def write_decision(run_dir: Path, decision: dict | ReviewDecision) -> ReviewDecision:
    """Validate and store the reviewer's answer. Raises ValueError when it does not fit the pause."""
    try:
        d = decision if isinstance(decision, ReviewDecision) else ReviewDecision.model_validate(decision)
    except ValueError as exc:
        raise ReviewError(str(exc)) from exc
    pending = read_pending(run_dir)
    if pending is None:
        raise ReviewError("the run is not waiting for a review")
    if pending.get("stage") != d.stage:
        raise ReviewError(f"the run waits for a {pending.get('stage')} review, not {d.stage}")
    if read_decision(run_dir) is not None:
        raise ReviewError("this pause was already answered")
    d = d.model_copy(update={"round": pending.get("round")})
    extra = {k: v for k, v in (decision if isinstance(decision, dict) else {}).items() if k == "who"}
    out = {**d.model_dump(exclude_none=True), **extra, "request_id": pending.get("id"), "at": time.time()}
    if d.text:
        out["feedback"] = d.text
    _write(review_dir(run_dir) / "decision.json", out)
    return d


def read_decision(run_dir: Path) -> dict | None:
    """The answer to the *current* pause; None if unanswered (a decision for an older pause is stale)."""
    d = _read(review_dir(run_dir) / "decision.json")
    pending = read_pending(run_dir)
    if d is None or pending is None or d.get("request_id") not in (None, pending.get("id")):
        return None
    return d


def consume(run_dir: Path) -> dict | None:
    """After the run resumed with the decision: archive {request, decision} and clear the pause."""
    rdir = review_dir(run_dir)
    decision, pending = read_decision(run_dir), read_pending(run_dir)
    if decision is None:
        return None
    n = len(list((rdir / "history").glob("*.json"))) if (rdir / "history").is_dir() else 0
    _write(rdir / "history" / f"{n:03d}.json", {"request": pending, "decision": decision})
    (rdir / "decision.json").unlink(missing_ok=True)
    (rdir / "pending.json").unlink(missing_ok=True)
    return decision


# --- the web UI's vocabulary (same files) ---------------------------------------------------
def request_review(run_dir: Path, *, stage: str, **fields) -> dict:
    return write_pending(run_dir, {"stage": stage, **fields})


def pending_review(run_dir: Path) -> dict | None:
    """The open pause, or None when there is none or it is already answered."""
    p = read_pending(run_dir)
    return p if p is not None and read_decision(run_dir) is None else None


def record_decision(run_dir: Path, action: str, text: str | None = None, who: str | None = None, *,
                    plan: dict | None = None, files: dict[str, str] | None = None) -> dict:
    if action not in ("approve", "edit", "feedback"):
        raise ReviewError(f"unknown action {action!r} (approve / edit / feedback)")
    if action == "feedback" and not (text or "").strip():
        raise ReviewError("feedback is empty: write what should change")
    p = read_pending(run_dir)
    if p is None:
        raise ReviewError("the run is not waiting for a review")
    d = {"stage": p.get("stage"), "action": action, "text": (text or None) if action == "feedback" else None,
         "plan": plan, "files": files, "who": who}
    write_decision(run_dir, {k: v for k, v in d.items() if v is not None})
    return _read(review_dir(run_dir) / "decision.json")


consume_decision = consume


def default_reviewer() -> str:
    """Who a decision is attributed to when nobody says: $REPRO_REVIEWER, else the login name."""
    import getpass

    try:
        return os.environ.get("REPRO_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"
