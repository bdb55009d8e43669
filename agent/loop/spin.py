"""Spinning: the same call again after the same failure. A weak model copies its last call from the
conversation (the issue-22 run called start_job with the same command nine times without reading
the job's log). The second identical failing call in a row gets a note that quotes the failure —
the last lines of the job's log, or of the command's output — and says to read the log and edit;
``max_repeats_in_row`` of them end the loop (exit ``stuck``).
"""
from __future__ import annotations

import hashlib
import json
import re

#: lines of the log (or output) a note quotes
QUOTE_LINES = 12
QUOTE_CHARS = 1500


def signature(call: dict) -> str:
    """The call as a key: its tool and its arguments, in a canonical order."""
    blob = json.dumps([call.get("name"), call.get("arguments") or {}], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def failed(ok: bool, malformed: bool, meta: dict | None) -> bool:
    """Whether a call's result is a failure worth a note: the tool said so, a command or job
    exited non-zero, or the job it names has failed or is lost. Malformed calls are counted apart
    (malformed_in_row)."""
    meta = meta or {}
    if malformed:
        return False
    codes = [meta.get(k) for k in ("returncode", "exit_code")]
    return (not ok) or meta.get("state") in ("failed", "lost") or any(c not in (None, 0) for c in codes)


def quote(lines: list[str]) -> str:
    text = "\n".join(lines[-QUOTE_LINES:]).strip()
    return text[-QUOTE_CHARS:] if text else "(no output)"


def _steady(failure: str) -> str:
    """The failure without what differs between two runs of the same call: durations ("after
    0.03 s", "4 s") and the per-call log file a long output names (.repro/logs/<call id>.log)."""
    return re.sub(r"\d+(\.\d+)?\s?s\b", "#s", re.sub(r"\.repro/logs/\S+", ".repro/logs/#", failure))


def track(previous: dict | None, call: dict, failure: str | None) -> dict:
    """The run of identical failing calls after this one: {signature, failure (its hash), count}.
    ``failure`` is the quoted failure (None: the call did not fail, the run is broken)."""
    if failure is None:
        return {"count": 0}
    sig, fp = signature(call), hashlib.sha256(_steady(failure).encode()).hexdigest()[:16]
    prev = previous or {}
    same = prev.get("signature") == sig and prev.get("failure") == fp
    return {"signature": sig, "failure": fp, "count": prev.get("count", 0) + 1 if same else 1}


def note(call: dict, count: int, failure: str, limit: int) -> str:
    left = limit - count
    return (f"You called {call.get('name')} with the same arguments {count} times in a row, and it failed the same "
            f"way each time:\n{failure}\nThe same call will fail again"
            + (f" (after {left} more the loop ends)" if left > 0 else "") +
            ". Read the log first (job_status with a larger tail, or read_file on the log), then fix the cause "
            "with edit_file or write_file.")
