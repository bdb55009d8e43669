"""One eval task: run (or resume) a replication and write its eval.json. Runs inside a Ray
worker (or a plain process, for the bench); every input arrives as plain data."""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from agent.eval.config import import_object
from agent.eval.tasks import RESULT_NAME, Task
from graders.files import write_atomic, write_json
from agent.runner import RunFailed, execute_run


def _models(task: Task) -> tuple[Any, Any]:
    cfg = task.config
    if not cfg.model_factory:
        return None, None  # execute_run opens the configured clients (or the embedded server)
    made = import_object(cfg.model_factory)(config=cfg, seed=task.seed, paper_id=task.paper.paper_id,
                                            **cfg.factory_args)
    return made if isinstance(made, tuple) else (made, made)


def _sandboxes(task: Task, run_config) -> Any:
    if not task.config.sandbox_factory:
        return None  # execute_run opens the configured backend (run-id labelled, reaped on resume)
    return import_object(task.config.sandbox_factory)(run_config=run_config, seed=task.seed,
                                                      paper_id=task.paper.paper_id, **task.config.factory_args)


def _ray_node_id() -> str | None:
    """The Ray node this task runs on (hex id; None outside Ray): which node of a cluster ran it."""
    ray = sys.modules.get("ray")  # imported by the Ray worker running us; never imported here
    try:
        return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
    except Exception:  # noqa: BLE001 — informative only
        return None


def _resumable(run_dir: Path) -> bool:
    return (run_dir / "run.json").is_file() and (run_dir / "checkpoints.sqlite").is_file()


def run_task(task_data: dict) -> dict:
    """Execute one attempt; return (and write, atomically and last) its eval.json."""
    task = Task.model_validate(task_data)
    run_dir = task.run_dir
    if (run_dir / RESULT_NAME).exists():  # finished meanwhile (another driver): never touch it
        return json.loads((run_dir / RESULT_NAME).read_text())
    resume = task.resume and _resumable(run_dir)
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # an attempt killed before it saved its config: nothing to keep
    rc = task.config.run_config(run_id=task.run_id, runs_dir=Path(task.runs_dir), paper_path=task.paper.pdf,
                                rubric_path=task.paper.rubric, seed=task.seed)
    if task.cpus and rc.sandbox_cpus is None:  # a configured quota wins over the fair share
        rc = rc.model_copy(update={"sandbox_cpus": task.cpus})
    started = time.time()
    status, cause = "error", None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    progress_log = (run_dir / "logs" / "eval-progress.log").open("a")

    def progress(event: str, **data: Any) -> None:
        if event == "node":
            progress_log.write(f"{time.time():.1f} {data.get('name')} {data.get('detail', '')}\n")
        elif event == "tool":  # the coding agent's steps: "code turn 3: bash command=..."
            progress_log.write(f"{time.time():.1f} code turn {data.get('turn')}: {data.get('name')} "
                               f"{data.get('detail', '')}\n")
        else:
            return
        progress_log.flush()

    try:
        agent, judge = _models(task)
        state = execute_run(rc, resume=resume, model=agent, judge_model=judge, factory=_sandboxes(task, rc),
                            progress=progress)
        status = state.get("status") or "done"
        cause = state.get("stop_reason") if status != "done" else None
    except RunFailed as exc:
        status, cause = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 — the task boundary: record the error, never lose the task
        status, cause = "error", f"{type(exc).__name__}: {exc}"
        write_atomic(run_dir / "logs" / "eval-error.txt", traceback.format_exc())
    finally:
        progress_log.close()
    result = {
        "paper": task.paper.paper_id,
        "config": task.config.name,
        "config_id": task.config.config_id,
        "seed": task.seed,
        "attempt": task.attempt,
        "run_id": task.run_id,
        "status": status,
        "cause": cause,
        "resumed": resume,
        "started_at": started,
        "finished_at": time.time(),
        "task_wall_s": round(time.time() - started, 2),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "node_id": _ray_node_id(),
        "report": "report.json" if (run_dir / "report.json").is_file() else None,
    }
    if status == "paused":  # waiting at a review gate (run: {review: true}): not finished; after
        return result       # `repro review`, the next `repro eval` resumes it from its checkpoint
    write_json(run_dir / RESULT_NAME, result)
    return result


def warm_up(hold_s: float = 0.5) -> int:
    """A no-op task: by the time it runs, this worker has imported the whole run path. Holding
    it a moment spreads a batch of warm-ups over distinct workers (bench only)."""
    time.sleep(hold_s)
    return os.getpid()
