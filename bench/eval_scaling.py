"""`repro eval` scaling, measured side by side in one run.

    python bench/eval_scaling.py [--runs 8] [--work 3.0]

N independent short replications (scripted models, fake sandbox whose reproduce.sh burns
``--work`` seconds of real CPU as "training"; everything else — ingest, plan, implement, smoke
run, reproduction with its start marker, judge, report — is the real code path):

* Ray, local instance, parallelism 1 vs 2: speed-up ratio (goal >= 1.7x at 2 on 2 cores);
* Ray vs a plain ``ProcessPoolExecutor`` (spawned workers) at parallelism 2 for the same runs:
  overhead ratio (goal <= 1.1x).

Both sides first start their workers and have each import the run path once (a warm-up task);
the ratios time the runs after that: steady state, what each further run costs. The one-time
costs (Ray's start-up, a worker's first imports) are printed beside them, and a cold end-to-end
ratio too.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.eval.config import EvalConfig  # noqa: E402
from agent.eval.doubles import make_demo_papers  # noqa: E402
from agent.eval.execution import RayRunner, run_in_process_pool  # noqa: E402
from agent.eval.tasks import Task, discover_papers  # noqa: E402
from agent.eval.worker import warm_up  # noqa: E402


def tasks_for(papers, config: EvalConfig, n: int, runs_dir: Path) -> list[Task]:
    return [Task(paper=papers[i % len(papers)], config=config, seed=i // len(papers), attempt=1, runs_dir=runs_dir)
            for i in range(n)]


def check(results: list[dict], n: int) -> None:
    bad = [r for r in results if r["status"] != "done"]
    assert len(results) == n and not bad, f"runs did not all finish: {bad[:2]}"


def ray_phase(tasks: list[Task], parallel: int) -> dict[str, float]:
    results: list[dict] = []
    t0 = time.perf_counter()
    with RayRunner(None, parallel) as runner:
        t1 = time.perf_counter()
        workers = runner.warm()
        t2 = time.perf_counter()
        runner.run(tasks, lambda t, r: results.append(r))
        t3 = time.perf_counter()
    check(results, len(tasks))
    assert len(workers) == parallel, f"warm-up reached {len(workers)} workers, not {parallel}"
    return {"start": t1 - t0, "warm": t2 - t1, "runs": t3 - t2}


def pool_phase(tasks: list[Task], parallel: int) -> dict[str, float]:
    """Fresh interpreters (spawn), like Ray's workers, so both sides pay the same imports."""
    results: list[dict] = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        t1 = time.perf_counter()
        workers = {f.result() for f in [pool.submit(warm_up, 0.5) for _ in range(parallel)]}
        t2 = time.perf_counter()
        run_in_process_pool(tasks, parallel, lambda t, r: results.append(r), pool=pool)
        t3 = time.perf_counter()
    check(results, len(tasks))
    assert len(workers) == parallel, f"warm-up reached {len(workers)} workers, not {parallel}"
    return {"start": t1 - t0, "warm": t2 - t1, "runs": t3 - t2}


def show(label: str, t: dict[str, float]) -> None:
    print(f"{label}: runs {t['runs']:7.2f} s   (start-up {t['start']:.2f} s, first imports {t['warm']:.2f} s: "
          "not in 'runs')")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8, help="independent runs per measurement")
    ap.add_argument("--work", type=float, default=3.0, help="CPU seconds of 'training' per run")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="repro-eval-bench-"))
    try:
        make_demo_papers(root / "papers", variants=1)
        papers = discover_papers(root / "papers")
        config = EvalConfig(name="bench", model_factory="agent.eval.doubles:scripted_models",
                            sandbox_factory="agent.eval.doubles:fake_sandboxes", factory_args={"work_s": a.work},
                            run={"sandbox_backend": "fake", "train_limit": 100, "epochs": 1})
        print(f"{a.runs} runs per measurement, {a.work:.1f} s CPU 'training' each, {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f} at start")
        r1 = ray_phase(tasks_for(papers, config, a.runs, root / "ray-p1"), 1)
        show("ray  parallel 1", r1)
        r2 = ray_phase(tasks_for(papers, config, a.runs, root / "ray-p2"), 2)
        show("ray  parallel 2", r2)
        p2 = pool_phase(tasks_for(papers, config, a.runs, root / "pool-p2"), 2)
        show("pool parallel 2", p2)
        speedup = r1["runs"] / r2["runs"]
        overhead = r2["runs"] / p2["runs"]
        print(f"speed-up at parallelism 2 (ray p1 / ray p2, runs): {speedup:.2f}x   goal >= 1.7x   "
              f"{'OK' if speedup >= 1.7 else 'MISSED'}")
        print(f"Ray overhead vs process pool (ray p2 / pool p2, runs): {overhead:.2f}x   goal <= 1.1x   "
              f"{'OK' if overhead <= 1.1 else 'MISSED'}")
        cold_r, cold_p = sum(r2.values()), sum(p2.values())
        print(f"cold, incl. start-up and first imports (ray p2 / pool p2): {cold_r:.2f} s / {cold_p:.2f} s "
              f"= {cold_r / cold_p:.2f}x")
        print(f"load average {os.getloadavg()[0]:.2f} at end (a shared machine: other load skews every number)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
