"""Running tasks: Ray (an embedded local instance bound to 127.0.0.1, or an existing cluster),
or a plain process pool (the bench's baseline). The driver only submits and collects; every
task writes its own run directory."""
from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

from agent.eval.tasks import RESULT_NAME, Task

LOOPBACK = "127.0.0.1"


class EvalExecutionError(RuntimeError):
    """Ray could not start or connect, or a task can never be scheduled; the message says why."""


def default_parallel(memory_gb_per_run: float = 4.0) -> int:
    """Concurrent runs this machine can hold: one per core, fewer when memory is short."""
    cpus = os.cpu_count() or 1
    try:
        import psutil

        by_mem = int(psutil.virtual_memory().available / 2**30 // memory_gb_per_run)
    except Exception:  # noqa: BLE001 — psutil missing or unreadable: cores decide
        by_mem = cpus
    return max(1, min(cpus, by_mem))


def _loopback_only_env() -> None:
    """Make a local Ray instance advertise and bind 127.0.0.1 only, and phone home never.

    Ray resolves "127.0.0.1" to the machine's routable address unless it believes it is a
    single-machine install; this flag (read when ``ray`` is imported, and by Ray's own child
    processes) says so. Usage statistics are off: no traffic leaves the machine.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:  # ray already imported in this process: its constant was read before the flag was set
        import sys

        consts = sys.modules.get("ray._private.ray_constants")
        if consts is not None and hasattr(consts, "ENABLE_RAY_CLUSTER"):
            consts.ENABLE_RAY_CLUSTER = False
    except Exception:  # noqa: BLE001
        pass


class RayRunner:
    """Context manager: a local Ray instance (``address=None``) or a connection to a cluster."""

    def __init__(self, address: str | None, parallel: int, max_cpus_per_task: float = 1.0):
        self.address = address
        self.parallel = max(1, parallel)
        self.max_cpus_per_task = max_cpus_per_task
        self.started_local = False
        self.node_ip: str | None = None

    def __enter__(self) -> "RayRunner":
        if self.address is None:
            _loopback_only_env()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        try:
            if self.address is None:
                ray.init(address="local", include_dashboard=False, _node_ip_address=LOOPBACK,
                         num_cpus=max(1, int(self.parallel * max(1.0, self.max_cpus_per_task))),
                         log_to_driver=False, configure_logging=False)
                self.started_local = True
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except Exception as exc:  # noqa: BLE001 — Ray raises many types; one clear message
            where = "start a local Ray instance" if self.address is None else f"connect to the Ray cluster at {self.address}"
            hint = ""
            if self.address is not None and os.environ.get("RAY_AUTH_MODE") is None:
                hint = (" — if the cluster uses token authentication (Ray's default), export RAY_AUTH_MODE=token "
                        "and give its token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)")
            raise EvalExecutionError(f"could not {where}: {type(exc).__name__}: {str(exc).strip()}{hint}") from exc
        self.node_ip = ray.util.get_node_ip_address()
        if self.started_local and self.node_ip != LOOPBACK:
            ray.shutdown()
            raise EvalExecutionError(f"the local Ray instance advertises {self.node_ip}, not {LOOPBACK}; refusing "
                                     "to run with services reachable from the network")
        return self

    def __exit__(self, *exc: Any) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()

    def check_feasible(self, tasks: list[Task]) -> None:
        """Fail now, not never: Ray would wait forever for resources no node has."""
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        for t in tasks:
            opts = t.config.resources.ray_options()
            need = {_ray_name(k): v for k, v in opts.items() if k != "resources" and v}
            need.update(opts.get("resources", {}))  # custom resources keep their own names
            if not any(all(res.get(k, 0) >= v for k, v in need.items()) for res in nodes):
                shown = {"CPU", "GPU", "memory", *need}
                raise EvalExecutionError(
                    f"configuration {t.config.name!r} asks for {opts} per run, but no node of "
                    f"{'this machine' if self.started_local else 'the cluster'} has that much "
                    f"(nodes: {[{k: v for k, v in r.items() if k in shown} for r in nodes]})")

    def warm(self, hold_s: float = 0.5) -> set[int]:
        """Have every worker slot import the run path once (bench: to time steady state)."""
        import ray

        from agent.eval.worker import warm_up

        remote = ray.remote(num_cpus=1)(warm_up)
        return set(ray.get([remote.remote(hold_s) for _ in range(self.parallel)]))

    def run(self, tasks: list[Task], on_result: Callable[[Task, dict], None],
            on_tick: Callable[[list[Task]], None] = lambda running: None, tick_s: float = 15.0) -> None:
        """Submit with at most ``parallel`` in flight; ``on_result`` for each as it finishes and
        ``on_tick`` with the runs in flight whenever ``tick_s`` passes with none finishing."""
        import ray

        from agent.eval.worker import run_task

        remote = ray.remote(max_retries=0)(run_task)
        self.check_feasible(tasks)
        pending = with_cpu_share(tasks, self.parallel)
        inflight: dict[Any, Task] = {}
        try:
            while pending or inflight:
                while pending and len(inflight) < self.parallel:
                    t = pending.pop(0)
                    ref = remote.options(name=f"repro-eval:{t.run_id}", **t.config.resources.ray_options()) \
                        .remote(t.model_dump(mode="json"))
                    inflight[ref] = t
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=tick_s)
                if not ready:
                    on_tick(list(inflight.values()))
                for ref in ready:
                    t = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 — worker died / task crashed: record why
                        result = record_crash(t, f"{type(exc).__name__}: {str(exc)[:2000]}")
                    on_result(t, result)
        except BaseException:
            for ref, t in inflight.items():  # Ctrl-C: stop the runs, and their containers
                ray.cancel(ref, force=True)
            if self.started_local:
                reap_local([t for t in inflight.values()])
            raise


def _ray_name(key: str) -> str:
    return {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}[key]


def record_crash(task: Task, cause: str) -> dict:
    """A task that died without writing eval.json (worker killed, node lost): the driver writes
    the failure, with its cause, only if the attempt directory is visible and still unfinished."""
    from graders.files import write_json

    result = {"paper": task.paper.paper_id, "config": task.config.name, "config_id": task.config.config_id,
              "seed": task.seed, "attempt": task.attempt, "run_id": task.run_id, "status": "error",
              "cause": f"task crashed: {cause}", "resumed": task.resume, "started_at": None,
              "finished_at": time.time(), "task_wall_s": None, "host": None, "pid": None, "node_id": None,
              "report": "report.json" if (task.run_dir / "report.json").is_file() else None}
    if task.run_dir.is_dir() and not (task.run_dir / RESULT_NAME).exists():
        write_json(task.run_dir / RESULT_NAME, result)
    elif (task.run_dir / RESULT_NAME).exists():
        return json.loads((task.run_dir / RESULT_NAME).read_text())
    return result


def reap_local(tasks: list[Task]) -> None:
    """Remove the containers of cancelled Docker runs (by their run-id label)."""
    for t in tasks:
        if t.config.run.get("sandbox_backend", "docker") == "docker" and not t.config.sandbox_factory:
            try:
                from sandbox.docker import reap

                reap(t.run_id)
            except Exception:  # noqa: BLE001 — best effort; the next attempt reaps again on start
                pass


def with_cpu_share(tasks: list[Task], parallel: int) -> list[Task]:
    """Each task gets cores / runs-in-flight (at least one): parallel runs that each size their
    thread pools by the whole machine fight over it, and none finishes sooner."""
    share = max(1.0, float((os.cpu_count() or 1) // max(1, min(parallel, len(tasks)))))
    return [t if t.cpus else t.model_copy(update={"cpus": share}) for t in tasks]


def run_in_process_pool(tasks: list[Task], parallel: int, on_result: Callable[[Task, dict], None],
                        pool: ProcessPoolExecutor | None = None,
                        on_tick: Callable[[list[Task]], None] = lambda running: None, tick_s: float = 15.0) -> None:
    """The same tasks on a plain ``ProcessPoolExecutor`` (no Ray): the bench's baseline."""
    from agent.eval.worker import run_task

    tasks = with_cpu_share(tasks, parallel)
    with contextlib.nullcontext(pool) if pool is not None else ProcessPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(run_task, t.model_dump(mode="json")): t for t in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED, timeout=tick_s)
            if not done:
                on_tick([futures[f] for f in pending if f.running()])
            for f in done:
                on_result(futures[f], f.result())


def run_progress(task: Task, now: float | None = None) -> str:
    """One line on where a run in flight is: its current step and for how long (from the
    progress log its worker writes), e.g. ``ingest → plan (42 s in this step, 1 min 3 s in all)``."""
    log = task.run_dir / "logs" / "eval-progress.log"
    now = time.time() if now is None else now
    try:
        lines = [ln.split(" ", 2) for ln in log.read_text().splitlines() if ln.strip()]
    except OSError:
        return "starting"
    if not lines:
        return "starting"
    first, last = float(lines[0][0]), lines[-1]
    step = last[1] + (f" {last[2][:80]}" if len(last) > 2 and last[2] else "")
    return f"{step} ({_dur(now - float(last[0]))} in this step, {_dur(now - first)} in all)"


def _dur(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def iter_results(runs_dir: Path) -> Iterator[dict]:
    for p in sorted(Path(runs_dir).glob(f"*/{RESULT_NAME}")):
        yield json.loads(p.read_text())
