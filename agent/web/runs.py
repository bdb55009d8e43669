"""Read run directories for the web UI: status, score, cost, live progress. Read-only.

Runs are plain directories (run.json, report.json, checkpoints.sqlite, review/), so the UI
works on a run that another process is writing; it never opens the checkpoint for writing.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from agent import review_store
from agent.usage import plus
from graders.reproduce import progress_text

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


def web_state(d: Path) -> dict:
    """The run's place in `repro serve`'s queue (agent/web/jobs.py); {} for a run started elsewhere."""
    return _json(d / "web.json") or {}


def status_of(d: Path) -> str:
    queue = web_state(d).get("state")
    if queue in ("queued", "cancelling"):
        return queue
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
    title = (_json(d / "paper.json") or {}).get("title") if (d / "paper.json").is_file() else None
    return title or web_state(d).get("title")  # read at submission, before the run's own ingest


def _judge_reliability(grade: dict) -> dict | None:
    """The judge's measured macro-F1 on labelled leaves (repro judge-eval), when it was measured."""
    q = grade.get("judge_quality") or {}
    if not q.get("f1") and q.get("f1") != 0:
        return {"measured": False} if grade else None
    return {"measured": True, "f1": q["f1"], "n": q.get("n"), "low": bool(q.get("low_confidence"))}


def _elapsed(d: Path, report: dict) -> float | None:
    """Seconds the run took (its report), or has taken so far (a run the server started)."""
    wall = (report.get("cost") or {}).get("wall_s")
    if wall is not None:
        return wall
    started = web_state(d).get("started_at")
    return round(time.time() - started, 1) if started else None


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
        "judge": _judge_reliability(grade),
        "seconds": _elapsed(d, report),
        "managed": bool(web_state(d)),
    }
    if status in ("running", "paused for review", "waiting to resume"):
        row["progress"] = progress(d)
    return row


def list_summaries(runs_dir: Path) -> list[dict]:
    """Every run, newest first."""
    dirs = [p.parent for p in Path(runs_dir).glob("*/run.json") if RUN_ID.match(p.parent.name)]
    dirs.sort(key=lambda d: (d / "run.json").stat().st_mtime, reverse=True)
    rows = [summary(d) for d in dirs]
    order = _queue(Path(runs_dir))
    for r in rows:
        if r["run_id"] in order:
            r["queue_position"] = order.index(r["run_id"]) + 1
    return rows


def _queue(runs_dir: Path) -> list[str]:
    """Queued run ids, first to start first (submission order)."""
    states = [(web_state(p.parent), p.parent.name) for p in runs_dir.glob("*/web.json")]
    return [run_id for st, run_id in sorted(states, key=lambda x: x[0].get("submitted_at", 0))
            if st.get("state") == "queued"]


def queue_position(d: Path) -> int | None:
    order = _queue(d.parent)
    return order.index(d.name) + 1 if d.name in order else None


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


def progress(d: Path, checkpoint: tuple[dict, str | None] | None = None) -> dict:
    values, ts = checkpoint or checkpoint_values(d)
    done = list(dict.fromkeys(n for n in values.get("node_log") or [] if n in STEPS))  # a re-plan runs plan twice
    current = "code" if values.get(LOOP_RUNNING) else next((s for s in STEPS if s not in done), None)
    log_name, tail = _log_tail(d)
    return {"status": status_of(d), "done": done, "current": current, "steps": list(STEPS),
            "fraction": round(len(done) / len(STEPS), 3), "loop": loop_progress(values),
            "checkpoint_at": ts, "log": log_name, "log_tail": tail, "review": _brief(review_store.pending_review(d)),
            "decision": answered_review(d)}


def _tail_lines(path: Path, max_bytes: int = 16000) -> list[str]:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        chunk = f.read().decode("utf-8", errors="replace")
    lines = chunk.splitlines()
    return lines[1:] if path.stat().st_size > max_bytes else lines  # the first may be cut


def recent_events(d: Path, n: int = 12) -> list[dict]:
    """The run's latest progress events (events.jsonl, written by a run the server started)."""
    path = d / "events.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in _tail_lines(path)[-n:]:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def describe(event: dict) -> str:
    """One event in the words the CLI prints."""
    kind, name, detail = event.get("event"), event.get("name"), event.get("detail") or ""
    if kind == "node":
        return f"{name}: {detail}".rstrip(": ")
    if kind == "step":
        return f"coding agent, turn {event.get('turn')}: asking the model ({detail or 'model'})"
    if kind == "tool":
        return f"coding agent, turn {event.get('turn')}: {name} {detail}".rstrip()
    if kind == "grade":
        return f"grading: {event.get('done')}/{event.get('total')} leaves"
    if kind == "log":
        return f"reproduction: {event.get('line', '')}"
    if kind == "progress":  # the reproduction's or the smoke job's progress line, as the CLI prints it
        return progress_text(event)
    return f"run: {detail}"


def last_tool_call(d: Path, lines: int = 12) -> dict | None:
    """The coding agent's latest tool call and the tail of what it returned (trajectory/<turn>.json)."""
    tdir = d / "trajectory"
    files = sorted(tdir.glob("*.json")) if tdir.is_dir() else []
    for path in reversed(files[-3:]):
        rec = _json(path) or {}
        results = rec.get("results") or []
        if results:
            r = results[-1]
            text = str(r.get("content") or "")
            args = r.get("arguments") if isinstance(r.get("arguments"), dict) else {}
            brief = ", ".join(f"{k}={str(v)[:60]!r}" for k, v in list(args.items())[:3] if k != "content")
            return {"turn": rec.get("turn"), "tool": r.get("name"), "args": brief, "ok": r.get("ok"),
                    "seconds": r.get("seconds"), "tail": "\n".join(text.splitlines()[-lines:])[-2000:]}
    return None


def live(d: Path) -> dict:
    """What the run page streams: progress, the current activity, the last tool call, time and budget used."""
    checkpoint = checkpoint_values(d)
    values = checkpoint[0]
    out = progress(d, checkpoint)
    cfg = _json(d / "run.json") or {}
    budgets = cfg.get("budgets") or {}
    loop = values.get("loop") or {}
    usage = plus(values.get("usage"), loop.get("usage"))  # planning's calls plus the loop's own (run_usage)
    web = web_state(d)
    started = values.get("started_at") or web.get("started_at")
    events = recent_events(d)
    out.update(
        activity=describe(events[-1]) if events else None,
        events=[describe(e) for e in events[-6:]],
        # the latest progress line of a training script (the reproduction, the smoke job): stays shown
        # while other events pass
        training=next((describe(e) for e in reversed(events) if e.get("event") == "progress"), None),
        last_call=last_tool_call(d),
        budget={"turns": loop.get("turn") or 0, "max_turns": budgets.get("max_steps"),
                "tokens": (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0),
                "max_tokens": budgets.get("max_model_tokens"),
                "elapsed_s": round(time.time() - started, 1) if started and out["status"] not in ENDED else None,
                "max_wall_s": budgets.get("max_wall_s")},
        queue=web.get("state"), note=web.get("note"),
    )
    return out


ENDED = ("done", "failed", "stopped", "cancelled")
