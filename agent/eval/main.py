"""`repro eval`: plan the tasks, run the missing ones on Ray, aggregate, render the leaderboard."""
from __future__ import annotations

import contextlib
import fcntl
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from agent.eval.config import EvalConfig
from agent.eval.execution import RayRunner, default_parallel, run_in_process_pool, run_progress
from agent.eval.leaderboard import build_leaderboard, collect_rows
from agent.eval.render import write_leaderboard
from agent.eval.tasks import PaperEntry, Task, discover_papers, plan_tasks, scan
from graders.files import write_json

INVOCATIONS = "eval-invocations.jsonl"


class EvalBusy(RuntimeError):
    """Another `repro eval` is using this output directory."""


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """One driver per output directory; the OS drops the lock if the driver is killed."""
    out.mkdir(parents=True, exist_ok=True)
    fh = (out / ".eval.lock").open("a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        fh.close()
        raise EvalBusy(f"another `repro eval` is running on {out} (lock {out / '.eval.lock'})") from exc
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def aggregate_to_leaderboard(papers: list[PaperEntry], configs: list[EvalConfig], seeds: int, out: Path,
                             meta: dict | None = None) -> tuple[dict, dict[str, Path]]:
    runs_dir = out / "runs"
    states = scan(papers, configs, seeds, runs_dir)
    rows = collect_rows(states, runs_dir, out)
    lb = build_leaderboard(rows, configs=[c.name for c in configs], papers=[p.paper_id for p in papers],
                           seeds=seeds, meta=meta)
    return lb, write_leaderboard(lb, out)


def run_eval(
    papers_dir: Path,
    configs: list[EvalConfig],
    *,
    seeds: int,
    out: Path,
    parallel: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    executor: str = "ray",
    echo: Callable[[str], None] = lambda line: None,
    progress_every: float = 15.0,
) -> dict[str, Any]:
    """Run every missing (paper, seed, config) and write the leaderboard; returns a summary."""
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    out = Path(out).resolve()
    papers = discover_papers(papers_dir)
    parallel = parallel or default_parallel(max((c.resources.memory_gb or 4.0) for c in configs))
    with out_lock(out):
        runs_dir = out / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval-manifest.json", {
            "papers_dir": str(Path(papers_dir).resolve()), "papers": [p.model_dump(mode="json") for p in papers],
            "seeds": seeds, "configs": [{**c.model_dump(mode="json"), "config_id": c.config_id} for c in configs]})
        plan = plan_tasks(scan(papers, configs, seeds, runs_dir), runs_dir, retry_failed=retry_failed)
        total = len(papers) * len(configs) * seeds
        echo(f"{total} runs: {plan.skipped_done} done, {plan.skipped_failed} failed (kept; --retry-failed to rerun), "
             f"{len(plan.run)} to run ({plan.resumed} resumed, {plan.retried} retried) — parallel {parallel}, "
             f"{'Ray ' + (ray_address or 'local (127.0.0.1)') if executor == 'ray' else 'process pool'}")
        started = time.time()
        outcomes: dict[str, int] = {}
        done_count = [0]

        def on_result(task: Task, result: dict) -> None:
            done_count[0] += 1
            outcomes[result["status"]] = outcomes.get(result["status"], 0) + 1
            cause = f" — {result['cause'][:120]}" if result.get("cause") else ""
            echo(f"[{done_count[0]}/{len(plan.run)}] {task.run_id}: {result['status']}{cause}")

        last_seen: dict[str, tuple[str, float]] = {}

        def on_tick(running: list[Task]) -> None:
            # a line per run in flight when its step changes, and at least once a minute
            now = time.time()
            for t in running:
                line = run_progress(t, now)
                step = line.split(" (")[0]
                seen = last_seen.get(t.run_id)
                if seen is None or seen[0] != step or now - seen[1] >= max(60.0, 4 * progress_every):
                    last_seen[t.run_id] = (step, now)
                    echo(f"  … {t.run_id}: {line}")

        executor_desc = "none (nothing to run)"
        if plan.run:
            if executor == "ray":
                max_cpus = max(t.config.resources.num_cpus for t in plan.run)
                with RayRunner(ray_address, parallel, max_cpus) as runner:
                    executor_desc = f"ray ({'cluster ' + ray_address if ray_address else 'local, ' + str(runner.node_ip)})"
                    runner.run(plan.run, on_result, on_tick, tick_s=progress_every)
            else:
                executor_desc = "process pool"
                run_in_process_pool(plan.run, parallel, on_result, on_tick=on_tick, tick_s=progress_every)
        meta = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "executor": executor_desc,
                "parallel": parallel}
        lb, paths = aggregate_to_leaderboard(papers, configs, seeds, out, meta)
        summary = {"started_at": started, "wall_s": round(time.time() - started, 2), "total": total,
                   "skipped_done": plan.skipped_done, "skipped_failed": plan.skipped_failed, "ran": len(plan.run),
                   "resumed": plan.resumed, "retried": plan.retried, "outcomes": outcomes,
                   "ran_run_ids": [t.run_id for t in plan.run], "executor": executor_desc, "parallel": parallel,
                   "leaderboard": {k: str(v) for k, v in paths.items()}}
        with (out / INVOCATIONS).open("a") as fh:  # one line per invocation: what this one did
            fh.write(json.dumps(summary) + "\n")
        return summary
