"""One run started by `repro serve`, in its own process: ``python -m agent.web.worker RUN_DIR``.

The server writes run.json before it starts this; a run with a checkpoint is resumed (after a
restart of the server, or a review answered in the browser). Every progress event goes to
``events.jsonl`` in the run directory, which the run page streams.

SIGTERM stops the run. With ``cancel.json`` in the run directory (the Cancel button) the run ends
for good: sandboxes removed, a partial report with status "cancelled". Without it (the server is
shutting down) the run is only interrupted: its checkpoint stays, and the next server resumes it.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

PASSWORD_ENV = "REPRO_PDF_PASSWORD"
EXIT_FAILED, EXIT_INTERRUPTED = 1, 75


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException so no ``except Exception`` inside a node swallows it."""


def cancel_path(run_dir: Path) -> Path:
    return Path(run_dir) / "cancel.json"


def events_path(run_dir: Path) -> Path:
    return Path(run_dir) / "events.jsonl"


class EventLog:
    """The runner's progress callback: one JSON line per event, appended and flushed at once."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, event: str, **data) -> None:
        line = {"at": round(time.time(), 3), "event": event}
        line.update({k: v for k, v in data.items() if isinstance(v, (str, int, float, bool)) or v is None})
        self.f.write(json.dumps(line) + "\n")
        self.f.flush()


def _stop(signum, frame):  # noqa: ARG001
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: the cleanup must not be cut short
    raise Stopped()


def main(argv: list[str]) -> int:
    from agent.runner import RunFailed, cancel_run, execute_run, load_run_config

    run_dir = Path(argv[0]).resolve()
    cfg = load_run_config(run_dir.name, run_dir.parent)
    password = os.environ.pop(PASSWORD_ENV, None)  # never in run.json: handed over in the environment only
    if password:
        cfg = cfg.model_copy(update={"password": password})
    events = EventLog(events_path(run_dir))
    signal.signal(signal.SIGTERM, _stop)
    resume = (run_dir / "checkpoints.sqlite").exists()
    events("worker", detail="resumed from its checkpoint" if resume else "started", pid=os.getpid())
    try:
        try:
            state = execute_run(cfg, resume=resume, progress=events)
        except Stopped:
            if not cancel_path(run_dir).exists():
                events("worker", detail="interrupted: the server is stopping; the run resumes when it starts again")
                return EXIT_INTERRUPTED
            who = (json.loads(cancel_path(run_dir).read_text()) or {}).get("who") or "someone"
            events("worker", detail=f"cancelled by {who}: removing its sandboxes, writing the partial report")
            cancel_run(cfg, f"cancelled from the browser by {who}")
            events("worker", detail="cancelled")
            return 0
        except RunFailed as exc:
            events("worker", detail=f"failed: {exc}")
            return EXIT_FAILED
        events("worker", detail=f"ended: {state.get('status') or 'done'}")
        return 0
    finally:
        events.f.close()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # a node's helper threads (judge groups, log readers) must not keep a stopped run alive
    os._exit(code)
