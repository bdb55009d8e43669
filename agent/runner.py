"""Start, resume and finish runs: run directory, checkpointer, models, sandboxes, clean errors."""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agent.config import ModelConfig, RunConfig
from agent.context import RunContext
from agent.graph import compile_graph
from agent.llm import EmbeddedServer, ModelError, OpenAIChatModel
from graders.files import write_atomic, write_json
from agent.nodes.report import build_report_data
from agent import review_store
from graders.judge import JudgeTransportError
from graders.report import write_report
from graders.rubric import RubricError
from papers.errors import PaperError
from sandbox import SandboxError, open_sandbox
from sandbox.broker import Broker
from sandbox.broker.rules import read_blacklist
from sandbox.policy import SandboxPolicy


class RunFailed(Exception):
    """A run stopped on an error a person must act on; the message says what to do."""

    def __init__(self, message: str, run_id: str):
        super().__init__(message)
        self.run_id = run_id


def new_run_id(paper_path: Path) -> str:
    stem = "".join(c if c.isalnum() else "-" for c in Path(paper_path).stem.lower())[:28].strip("-")
    return f"{stem}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def save_run_config(cfg: RunConfig) -> None:
    write_json(cfg.run_dir / "run.json", json.loads(cfg.model_dump_json()))


def load_run_config(run_id: str, runs_dir: Path) -> RunConfig:
    path = Path(runs_dir) / run_id / "run.json"
    if not path.exists():
        raise RunFailed(f"no run {run_id!r} under {runs_dir} (missing {path}); `repro runs` lists runs", run_id)
    return RunConfig.model_validate_json(path.read_text())


@contextlib.contextmanager
def open_models(cfg: RunConfig):
    """Yield (agent_model, judge_model); an embedded server lives exactly as long as the run.

    ``$REPRO_SCRIPTED_MODEL`` (a JSON rule file, agent.scripted) replaces both: child-process
    tests (kill and resume) use it, since a test cannot hand a model object to a subprocess.
    """
    from agent.scripted import from_env

    scripted = from_env()
    if scripted is not None:
        yield scripted, scripted
        return
    server: EmbeddedServer | None = None

    def make(mc: ModelConfig):
        nonlocal server
        if mc.embedded:
            if server is None:
                server = EmbeddedServer(log_path=cfg.run_dir / "logs" / "embedded-llm.log").start()
            return server.client()
        return OpenAIChatModel(mc.model or "gpt-4o-mini", base_url=mc.base_url)

    try:
        agent = make(cfg.agent_model)
        judge = agent if cfg.judge_model == cfg.agent_model else make(cfg.judge_model)
        yield agent, judge
    finally:
        if server is not None:
            server.stop()


def open_broker(cfg: RunConfig) -> Broker:
    """The run's asset broker: its ledger is the run's assets.json; the paper's blacklist.txt (beside
    the PDF, PaperBench's layout) is part of its rules."""
    return Broker.open(cfg.assets, ledger=cfg.run_dir / "assets.json", blacklist=read_blacklist(cfg.paper_path.parent))


def sandbox_factory(cfg: RunConfig, broker: Broker | None = None) -> Callable[..., Any]:
    def factory(role: str, **options: Any):
        options = {"log_dir": cfg.run_dir / "logs", **options}
        if cfg.sandbox_backend == "docker" and cfg.gpu == "auto":
            options.setdefault("gpu", True)  # taken only when the engine has the NVIDIA runtime
        update: dict[str, Any] = {}
        if cfg.sandbox_cpus and cfg.sandbox_backend == "docker":
            update["cpus"] = cfg.sandbox_cpus
        if broker is not None and cfg.sandbox_backend in ("docker", "local"):
            update["asset_mount"] = str(broker.root)  # every sandbox of the run: the agent's and the reproduction's
        if update:
            policy = options.get("policy") or SandboxPolicy()
            options["policy"] = SandboxPolicy.model_validate({**policy.model_dump(), **update})  # validated
        return open_sandbox(cfg.sandbox_backend, run_id=cfg.run_id, role=role, image=cfg.image, **options)

    return factory


def _reap(cfg: RunConfig, *, resume: bool) -> None:
    if cfg.sandbox_backend == "docker":
        from sandbox.docker import reap

        # leftovers of a crashed attempt (C02) — but on resume not the agent's workspace: the run
        # re-attaches to it, its files and its running jobs. A new run starts from nothing.
        reap(cfg.run_id, keep_roles=("agent",) if resume else ())


def _checkpointer(cfg: RunConfig) -> SqliteSaver:
    conn = sqlite3.connect(cfg.run_dir / "checkpoints.sqlite", check_same_thread=False)
    return SqliteSaver(conn)


def execute_run(
    cfg: RunConfig,
    *,
    resume: bool = False,
    model: Any = None,
    judge_model: Any = None,
    factory: Callable[[str], Any] | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Run (or resume) the graph to the end. ``model``/``factory`` override the defaults (tests)."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "logs").mkdir(exist_ok=True)
    if not resume:
        save_run_config(cfg)
    _reap(cfg, resume=resume)
    saver = _checkpointer(cfg)
    graph = compile_graph(checkpointer=saver)
    # each loop turn is a model step plus one step per tool call: room for a busy loop
    thread = {"configurable": {"thread_id": cfg.run_id}, "recursion_limit": 8 * cfg.budgets.max_steps + 100}
    models_cm = contextlib.nullcontext((model, judge_model or model)) if model is not None else open_models(cfg)
    progress = _hang_hook(progress or (lambda *a, **k: None), cfg)
    try:
        with models_cm as (agent_model, judge):
            broker = open_broker(cfg)
            ctx = RunContext(config=cfg, model=agent_model, judge_model=judge,
                             sandbox_factory=factory or sandbox_factory(cfg, broker),
                             progress=progress, broker=broker)
            snapshot = graph.get_state(thread)
            if resume and snapshot.values and not snapshot.next and not snapshot.tasks:
                return snapshot.values  # already finished
            start: Any = None if (resume and snapshot.values) else {
                "run_id": cfg.run_id, "status": "running", "started_at": time.time(),
            }
            waiting = _interrupt(snapshot) if start is None else None
            if waiting is not None:  # paused for review: resume only with the reviewer's decision
                decision = review_store.read_decision(cfg.run_dir)
                if decision is None or (decision.get("stage"), decision.get("round", waiting.get("round"))) != \
                        (waiting["stage"], waiting.get("round")):
                    return _pause(cfg, graph, thread, waiting)
                start = Command(resume=decision)
            try:
                # durability="sync": each step's checkpoint is on disk before the next step starts,
                # so a SIGKILL anywhere loses at most the node that was running (C01/C03).
                values = graph.invoke(start, thread, context=ctx, durability="sync")
                if waiting is not None:
                    review_store.consume(cfg.run_dir)
                snapshot = graph.get_state(thread)
                pending = _interrupt(snapshot)
                if pending is not None:
                    return _pause(cfg, graph, thread, pending)
                _close_workspace(ctx)  # the run is over: its workspace container goes...
                _reap(cfg, resume=False)  # ...and one a crashed attempt left that this process never opened
                return values
            except (PaperError, ModelError, SandboxError, JudgeTransportError, RubricError, FileNotFoundError) as exc:
                _fail(cfg, graph, thread, exc, agent_model, judge)
                raise RunFailed(f"{type(exc).__name__}: {exc}", cfg.run_id) from exc
            except Exception as exc:  # noqa: BLE001 — a bug of ours: still a report, never a bare traceback
                where = _internal_error(cfg, exc)
                _fail(cfg, graph, thread, RuntimeError(f"internal error{where}: {type(exc).__name__}: {exc}"),
                      agent_model, judge)
                raise RunFailed(f"internal error{where}: {type(exc).__name__}: {exc} (a defect in Repro, not in "
                                f"your input; the traceback is in logs/error.txt — please report it)",
                                cfg.run_id) from exc
    except ModelError as exc:  # the embedded server itself did not start
        _fail(cfg, graph, thread, exc, None, None)
        raise RunFailed(f"ModelError: {exc}", cfg.run_id) from exc
    finally:
        saver.conn.close()


def _close_workspace(ctx: RunContext) -> None:
    if ctx.workspace is not None:
        ctx.workspace.close()
        ctx.workspace = None


HANG_ENV = "REPRO_TEST_HANG_AT"
MARK_ENV = "REPRO_TEST_MARK_AT"


def _hang_hook(progress: Callable[..., None], cfg: RunConfig) -> Callable[..., None]:
    """Test hook for the kill-and-resume harness: ``REPRO_TEST_HANG_AT=node:grade`` (or
    ``tool:bash``, or ``grade:partial``: after some judge groups, not all) makes this process write
    ``<run_dir>/hang.marker`` and sleep at that point, so a parent can SIGKILL it exactly there;
    ``REPRO_TEST_MARK_AT=tool:wait_job`` only writes ``mark.marker`` and goes on (a parent kills
    it while the tool runs). Unset: a no-op."""
    import os

    spot, mark = os.environ.get(HANG_ENV), os.environ.get(MARK_ENV)
    if not spot and not mark:
        return progress

    first_done: list[int] = []

    def hooked(event: str, **data: Any) -> None:
        progress(event, **data)
        here = f"{event}:{data.get('name')}" if event in ("node", "tool") else ""
        if event == "grade":
            if not first_done:  # leaves decided without the model (checks, rules) count as done at once
                first_done.append(data.get("done", 0))
            if first_done[0] < data.get("done", 0) < data.get("total", 0):
                here = "grade:partial"  # some judge groups graded (and cached), some not
        if here and here == mark:  # say where we are and go on (the parent kills us mid-tool)
            write_atomic(cfg.run_dir / "mark.marker", str(os.getpid()))
        if here and here == spot:
            write_atomic(cfg.run_dir / "hang.marker", str(os.getpid()))
            time.sleep(3600)

    return hooked


def _interrupt(snapshot) -> dict | None:
    """The review payload the graph is paused on, if any."""
    for task in getattr(snapshot, "tasks", ()) or ():
        for intr in getattr(task, "interrupts", ()) or ():
            return dict(intr.value)
    return None


def _pause(cfg: RunConfig, graph, thread, waiting: dict) -> dict:
    """Write review/pending.json (plan, files, diff since the last pause) and return paused values."""
    values = dict(graph.get_state(thread).values or {})
    old = review_store.read_pending(cfg.run_dir)
    if old is not None and (old.get("stage"), old.get("round")) == (waiting["stage"], waiting.get("round")):
        values.update(status="paused", review_pending=old)  # the same pause, asked again
        return values
    sub = cfg.run_dir / "submission"
    rdir = review_store.review_dir(cfg.run_dir)
    files = {rel: (sub / rel).read_text(errors="replace") for rel in sorted(values.get("files") or {})
             if (sub / rel).is_file()}
    plan_text = json.dumps(values.get("plan") or {}, indent=2, sort_keys=True)
    current = {"plan.json": plan_text, **{f"submission/{k}": v for k, v in files.items()}}
    snap = rdir / "snapshot"
    before = {str(p.relative_to(snap)): p.read_text() for p in snap.rglob("*") if p.is_file()} if snap.is_dir() else {}
    diff = _diff(before, current)
    for rel, text in current.items():
        write_atomic(snap / rel, text)
    pending = {**waiting, "plan": values.get("plan"), "files": sorted(files), "diff": diff,
               "resume": f"repro review {cfg.run_id}"}
    review_store.write_pending(cfg.run_dir, pending)
    values.update(status="paused", review_pending=pending)
    return values


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    import difflib

    out: list[str] = []
    for rel in sorted(set(before) | set(after)):
        a, b = before.get(rel, ""), after.get(rel, "")
        if a != b:
            out += difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        fromfile=f"a/{rel}" if rel in before else "/dev/null", tofile=f"b/{rel}")
    return "".join(out)


def _internal_error(cfg: RunConfig, exc: Exception) -> str:
    """Keep the traceback of an unexpected exception in logs/error.txt; return ' in node X' (LangGraph
    notes the node a task failed in) or ''."""
    import traceback

    (cfg.run_dir / "logs").mkdir(exist_ok=True)
    (cfg.run_dir / "logs" / "error.txt").write_text("".join(traceback.format_exception(exc)))
    node = next((m.group(1) for n in getattr(exc, "__notes__", []) or []
                 if (m := re.search(r"task with name '([^']+)'", n))), None)
    return f" in node {node!r}" if node else ""


def _fail(cfg: RunConfig, graph, thread, exc: Exception, agent_model, judge) -> None:
    """Keep everything done so far and write a partial report that says what went wrong."""
    values = dict(graph.get_state(thread).values or {})
    models = {"agent": getattr(agent_model, "name", "—"), "judge": getattr(judge, "name", "—")}
    _partial_report(cfg, values, "failed", f"{type(exc).__name__}: {exc}", models)
    write_json(cfg.run_dir / "failure.json", {"error": values["stop_reason"], "at": time.time(),
                                              "resume": f"repro run --resume {cfg.run_id}"})


def _partial_report(cfg: RunConfig, values: dict, status: str, reason: str, models: dict) -> None:
    values.update(status=status, stop_reason=reason)
    try:
        write_report(build_report_data(values, cfg, models), cfg.run_dir)
    except Exception as report_exc:  # noqa: BLE001 — never mask the original error
        (cfg.run_dir / "logs").mkdir(exist_ok=True)
        (cfg.run_dir / "logs" / "report-error.txt").write_text(repr(report_exc))


def cancel_run(cfg: RunConfig, reason: str) -> None:
    """End a run for good from outside its graph (a person pressed Cancel): every sandbox of the run
    is removed (the agent's workspace too: nothing will resume it) and a partial report is written
    from the last checkpoint, status "cancelled". Called once the run's process has stopped."""
    if cfg.sandbox_backend == "docker":
        _reap(cfg, resume=False)
    values: dict = {}
    if (cfg.run_dir / "checkpoints.sqlite").exists():
        saver = _checkpointer(cfg)
        try:
            values = dict(compile_graph(checkpointer=saver).get_state(
                {"configurable": {"thread_id": cfg.run_id}}).values or {})
        finally:
            saver.conn.close()
    names = {"agent": cfg.agent_model.model or "embedded SmolLM2", "judge": cfg.judge_model.model or "embedded SmolLM2"}
    _partial_report(cfg, values, "cancelled", reason, names)


def list_runs(runs_dir: Path) -> list[dict]:
    """Runs that started (a checkpoint, a report or a recorded failure): a directory with only a
    run.json is a run that never began and is not listed."""
    rows = []
    for run_json in sorted(Path(runs_dir).glob("*/run.json")):
        d = run_json.parent
        if not any((d / f).exists() for f in ("checkpoints.sqlite", "report.json", "failure.json", "web.json")):
            continue  # (web.json: submitted in the browser, queued by `repro serve`)
        report = d / "report.json"
        row = {"run_id": d.name, "paper": json.loads(run_json.read_text()).get("paper_path"), "status": "running?",
               "score": None, "coverage": None, "started": datetime.fromtimestamp(run_json.stat().st_mtime).isoformat(timespec="seconds")}
        if report.exists():
            r = json.loads(report.read_text())
            row.update(status=r.get("status"), score=(r.get("grade") or {}).get("score"),
                       coverage=(r.get("grade") or {}).get("coverage"), paper=r["paper"].get("title") or row["paper"])
        elif (d / "failure.json").exists():
            row["status"] = "failed"
        elif (d / "web.json").exists() and json.loads((d / "web.json").read_text()).get("state") == "queued":
            row["status"] = "queued"
        rows.append(row)
    return rows
