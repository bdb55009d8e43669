"""Start, resume and finish runs: run directory, checkpointer, models, sandboxes, clean errors."""
from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from langgraph.checkpoint.sqlite import SqliteSaver

from agent.config import ModelConfig, RunConfig
from agent.context import RunContext
from agent.graph import compile_graph
from agent.llm import EmbeddedServer, ModelError, OpenAIChatModel
from agent.nodes.common import write_json
from agent.nodes.report import build_report_data
from graders.judge import JudgeTransportError
from graders.report import write_report
from graders.rubric import RubricError
from papers.errors import PaperError
from sandbox import SandboxError, open_sandbox


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
    """Yield (agent_model, judge_model); an embedded server lives exactly as long as the run."""
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


def sandbox_factory(cfg: RunConfig) -> Callable[[str], Any]:
    def factory(role: str):
        return open_sandbox(cfg.sandbox_backend, run_id=cfg.run_id, role=role, image=cfg.image,
                            log_dir=cfg.run_dir / "logs")

    return factory


def _reap(cfg: RunConfig) -> None:
    if cfg.sandbox_backend == "docker":
        from sandbox.docker import reap

        reap(cfg.run_id)  # leftovers of a crashed attempt (C02)


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
    _reap(cfg)
    saver = _checkpointer(cfg)
    graph = compile_graph(checkpointer=saver)
    thread = {"configurable": {"thread_id": cfg.run_id}, "recursion_limit": 60}
    models_cm = contextlib.nullcontext((model, judge_model or model)) if model is not None else open_models(cfg)
    try:
        with models_cm as (agent_model, judge):
            ctx = RunContext(config=cfg, model=agent_model, judge_model=judge,
                             sandbox_factory=factory or sandbox_factory(cfg),
                             progress=progress or (lambda *a, **k: None))
            snapshot = graph.get_state(thread)
            if resume and snapshot.values and not snapshot.next:
                return snapshot.values  # already finished
            start = None if (resume and snapshot.values) else {
                "run_id": cfg.run_id, "status": "running", "started_at": time.time(), "node_log": [],
                "debug_iterations": 0, "usage": {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "reasks": 0},
            }
            try:
                return graph.invoke(start, thread, context=ctx)
            except (PaperError, ModelError, SandboxError, JudgeTransportError, RubricError, FileNotFoundError) as exc:
                _fail(cfg, graph, thread, exc, agent_model, judge)
                raise RunFailed(f"{type(exc).__name__}: {exc}", cfg.run_id) from exc
    except ModelError as exc:  # the embedded server itself did not start
        _fail(cfg, graph, thread, exc, None, None)
        raise RunFailed(f"ModelError: {exc}", cfg.run_id) from exc
    finally:
        saver.conn.close()


def _fail(cfg: RunConfig, graph, thread, exc: Exception, agent_model, judge) -> None:
    """Keep everything done so far and write a partial report that says what went wrong."""
    values = dict(graph.get_state(thread).values or {})
    values.update(status="failed", stop_reason=f"{type(exc).__name__}: {exc}")
    models = {"agent": getattr(agent_model, "name", "—"), "judge": getattr(judge, "name", "—")}
    try:
        write_report(build_report_data(values, cfg, models), cfg.run_dir)
    except Exception as report_exc:  # noqa: BLE001 — never mask the original error
        (cfg.run_dir / "logs" / "report-error.txt").write_text(repr(report_exc))
    write_json(cfg.run_dir / "failure.json", {"error": values["stop_reason"], "at": time.time(),
                                              "resume": f"repro run --resume {cfg.run_id}"})


def list_runs(runs_dir: Path) -> list[dict]:
    rows = []
    for run_json in sorted(Path(runs_dir).glob("*/run.json")):
        d = run_json.parent
        report = d / "report.json"
        row = {"run_id": d.name, "paper": json.loads(run_json.read_text()).get("paper_path"), "status": "running?",
               "score": None, "coverage": None, "started": datetime.fromtimestamp(run_json.stat().st_mtime).isoformat(timespec="seconds")}
        if report.exists():
            r = json.loads(report.read_text())
            row.update(status=r.get("status"), score=(r.get("grade") or {}).get("score"),
                       coverage=(r.get("grade") or {}).get("coverage"), paper=r["paper"].get("title") or row["paper"])
        elif (d / "failure.json").exists():
            row["status"] = "failed"
        rows.append(row)
    return rows
