"""`repro` command line. Nothing imports this module."""
from __future__ import annotations

import atexit
import json
import sys
import webbrowser
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.config import Budgets, ModelConfig, RunConfig
from agent.eval.cli import eval_cmd
from agent.runner import RunFailed, execute_run, list_runs, load_run_config, new_run_id
from graders.cli import judge_eval_cmd, rubric_app, set_model_factory
from graders.reproduce import progress_text
from papers.cli import paper_app

app = typer.Typer(help="Repro: replicate a paper end to end — plan, code, sandboxed run, graded report.",
                  no_args_is_help=True)
app.add_typer(paper_app, name="paper")
app.add_typer(rubric_app, name="rubric")
app.command("judge-eval", help="Macro-F1 of a judge's leaf grades against human-graded trees.")(judge_eval_cmd)
app.command("eval", help="Run a paper set × seeds × configurations on Ray; write the leaderboard.")(eval_cmd)
try:  # the sandbox CLI is optional at import time (docker SDK missing => doctor explains)
    from sandbox.cli import sandbox_app

    app.add_typer(sandbox_app, name="sandbox")
except ImportError:  # pragma: no cover
    pass

console = Console(stderr=True)
DEMO_PAPER = Path(__file__).resolve().parent.parent / "papers" / "demo-minilm-sentiment" / "paper.pdf"


def _cli_model_factory(model: str | None = None, base_url: str | None = None):
    """For `repro rubric generate` and `repro judge-eval --model`: that endpoint (else the configured
    one), or the embedded server for this process."""
    mc = ModelConfig.from_env(model, base_url)
    if mc.embedded:
        from agent.llm import EmbeddedServer

        server = EmbeddedServer().start()
        atexit.register(server.stop)
        return server.client()
    from agent.llm import OpenAIChatModel

    return OpenAIChatModel(mc.model or "gpt-4o-mini", base_url=mc.base_url)


set_model_factory(_cli_model_factory)


_T0 = [0.0]


def _clock() -> str:
    import time

    if not _T0[0]:
        _T0[0] = time.monotonic()
    s = int(time.monotonic() - _T0[0])
    return f"[dim]{s // 60:3d}:{s % 60:02d}[/]"


def _progress(event: str, **data) -> None:
    if event == "node":
        console.print(f"{_clock()} [bold cyan]▶ {data['name']}[/] {data.get('detail', '')}")
    elif event == "step":
        console.print(f"{_clock()}   turn {data['turn']}: asking the model ({data.get('detail', '')})")
    elif event == "tool":
        console.print(f"{_clock()}   turn {data['turn']}: [bold]{data['name']}[/] {data.get('detail', '')}")
    elif event == "grade":
        if data["done"] == data["total"] or data["done"] % 5 == 0:
            console.print(f"  graded {data['done']}/{data['total']} leaves")
    elif event == "log":
        console.print(f"  {data['line']}")
    elif event == "progress":  # a training script's progress line (the reproduction, the smoke job), throttled
        console.print(f"{_clock()}   {escape(progress_text(data))}", highlight=False)


def _finish(state: dict, cfg: RunConfig) -> None:
    report = (state.get("report") or {}).get("html")
    grade = state.get("grade") or {}
    reps = (state.get("reproduction") or {}).get("results") or {}
    for exp, r in reps.items():
        shown = ", ".join(f"{k} {v:.4g}" + (f" (before {r['before'][k]:.4g})" if k in (r.get("before") or {}) else "")
                          for k, v in list(r["metrics"].items())[:3])
        console.print(f"  {exp}: {shown}")
    if grade:
        console.print(f"[bold green]score {grade['score']:.2f}[/] (coverage {grade['coverage']:.0%}, judge {grade['judge_model']})")
    if state.get("status") != "done":
        console.print(f"[yellow]run {state.get('status')}: {state.get('stop_reason')}[/]")
    console.print(f"report: {report}")
    typer.echo(report)


def _preflight_or_exit(cfg: RunConfig, *, resume: bool) -> None:
    """Check what can be checked cheaply before a run directory exists; exit 2 with every reason."""
    from agent.preflight import preflight

    console.print("checking the paper, rubric, model endpoint, sandbox and disk …")
    problems = preflight(cfg, resume=resume)
    if problems:
        for p in problems:
            console.print(f"[red]cannot start:[/] {p}")
        if not resume:
            console.print("nothing was created; fix the above and run the same command again")
        raise typer.Exit(2)


@app.command()
def run(
    paper: Optional[Path] = typer.Argument(None, help="the paper's PDF"),
    rubric: Optional[Path] = typer.Option(None, help="PaperBench rubric.json (default: beside the PDF, else generated)"),
    model: Optional[str] = typer.Option(None, help="agent model name (default $REPRO_MODEL; none = embedded SmolLM2)"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-protocol endpoint (default $OPENAI_BASE_URL)"),
    judge_model: Optional[str] = typer.Option(None, help="judge model, chosen apart from the agent: 'embedded' (the "
                                                         "local SmolLM2) or a name at the judge's endpoint "
                                                         "(default: the agent's)"),
    judge_base_url: Optional[str] = typer.Option(None, help="judge endpoint (default: the agent's)"),
    password: Optional[str] = typer.Option(None, help="PDF password"),
    sandbox: str = typer.Option("docker", help="docker | local (trusted code only)"),
    train_limit: Optional[int] = typer.Option(None, help="scale down: train on the first N sentences"),
    epochs: Optional[int] = typer.Option(None, help="override the planned epochs"),
    max_tokens: int = typer.Option(2_000_000, help="agent model token budget"),
    max_wall: float = typer.Option(4 * 3600, help="wall-time budget in seconds"),
    runs_dir: Path = typer.Option(Path("runs"), help="where run directories go"),
    resume: Optional[str] = typer.Option(None, help="resume this run id"),
    review: bool = typer.Option(False, "--review", help="pause for a human after the plan and after the code"),
    max_dollars: Optional[float] = typer.Option(None, help="agent model spend limit in US dollars"),
    max_sandbox: float = typer.Option(3 * 3600, help="sandbox-time budget in seconds"),
    max_steps: int = typer.Option(60, help="model turns of the coding agent's tool loop"),
    max_agent_time: float = typer.Option(2 * 3600, help="wall time of the tool loop in seconds"),
    guide: str = typer.Option("auto", help="narrow the tool menu per step for weak models: auto (embedded "
                                           "model only) | on | off"),
    seed: int = typer.Option(42, help="REPRO_SEED of the reproduction run"),
    seeds: int = typer.Option(1, help="re-run reproduce.sh with this many seeds (seed, seed+1, ...): means with "
                                      "95% intervals and a verdict per claim"),
    gpu: str = typer.Option("auto", help="auto: sandboxes get the NVIDIA GPU when Docker can hand it over | off"),
    assets: Optional[str] = typer.Option(None, help="the paper's own models, data and packages: online (fetched "
                                                    "by the host's broker) | offline (cache and catalogue only) | "
                                                    "auto (online when the Hub answers; default, or $REPRO_ASSETS)"),
) -> None:
    """Replicate a paper: ingest → plan → the coding agent's tool loop → reproduce → grade → report."""
    if guide not in ("auto", "on", "off"):
        raise typer.BadParameter("--guide must be auto, on or off")
    if gpu not in ("auto", "off"):
        raise typer.BadParameter("--gpu must be auto or off")
    if assets is not None and assets not in ("auto", "online", "offline"):
        raise typer.BadParameter("--assets must be auto, online or offline")
    if resume:
        cfg = load_run_config(resume, runs_dir)
        if password:
            cfg = cfg.model_copy(update={"password": password})
    else:
        if paper is None:
            raise typer.BadParameter("give a PAPER.pdf (or --resume RUN_ID)")
        if not paper.is_file():
            console.print(f"[red]error:[/] {paper} does not exist or is not a file")
            raise typer.Exit(2)
        try:
            agent_mc = ModelConfig.from_env(model, base_url)
            judge_mc = ModelConfig.for_judge(agent_mc, judge_model, judge_base_url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        cfg = RunConfig(run_id=new_run_id(paper), runs_dir=runs_dir, paper_path=paper.resolve(),
                        rubric_path=rubric.resolve() if rubric else None, password=password,
                        agent_model=agent_mc, judge_model=judge_mc, sandbox_backend=sandbox,
                        train_limit=train_limit, epochs=epochs,
                        budgets=Budgets(max_model_tokens=max_tokens, max_wall_s=max_wall, max_dollars=max_dollars,
                                        max_sandbox_s=max_sandbox, max_steps=max_steps, max_agent_s=max_agent_time),
                        review=review, guide=guide, seed=seed, seeds=seeds, gpu=gpu,
                        **({"assets": assets} if assets else {}))
    _preflight_or_exit(cfg, resume=bool(resume))
    console.print(f"run [bold]{cfg.run_id}[/] → {cfg.run_dir}")
    try:
        state = execute_run(cfg, resume=bool(resume), progress=_progress)
    except RunFailed as exc:
        console.print(f"[red]run failed:[/] {exc}")
        console.print(f"Everything done so far is kept in {cfg.run_dir}. Fix the cause, then: "
                      f"repro run --resume {exc.run_id} --runs-dir {runs_dir}")
        raise typer.Exit(1)
    _finish(state, cfg)


def _finish(state: dict, cfg: RunConfig, _done=_finish) -> None:
    if state.get("status") == "paused":
        p = state.get("review_pending") or {}
        console.print(f"[yellow]paused for a {p.get('stage')} review (round {p.get('round')})[/]: "
                      f"repro review {cfg.run_id} --runs-dir {cfg.runs_dir}")
        return
    _done(state, cfg)


@app.command("review")
def review_cmd(
    run_id: str,
    runs_dir: Path = typer.Option(Path("runs"), help="where run directories go"),
    approve: bool = typer.Option(False, "--approve", help="approve and resume"),
    feedback: Optional[str] = typer.Option(None, help="written feedback: the agent re-plans / revises the code"),
    edit_plan: Optional[Path] = typer.Option(None, help="a JSON file with the edited plan (plan stage)"),
    edit_file: list[str] = typer.Option([], help="REL=PATH: replace submission file REL with PATH (code stage)"),
    show: bool = typer.Option(False, "--show", help="only show what waits for review"),
) -> None:
    """Show a paused run's plan, files and diff since the last pause; approve / edit / give feedback; resume."""
    from agent import review_store

    cfg = load_run_config(run_id, runs_dir)
    pending = review_store.read_pending(cfg.run_dir)
    if pending is None:
        console.print(f"[red]error:[/] run {run_id} is not waiting for a review")
        raise typer.Exit(2)
    plan = pending.get("plan") or {}
    console.print(f"[bold]{pending['stage']} review, round {pending.get('round')}[/] — run {run_id}")
    console.print("experiments: " + ", ".join(f"{e.get('id')} ({e.get('name')})" for e in plan.get("experiments", [])))
    for d in plan.get("deviations", []):
        console.print(f"  deviation: {d['what']}: paper {d['paper']} → ours {d['ours']} ({d['reason']})")
    if pending.get("files"):
        console.print("files: " + ", ".join(pending["files"]))
    typer.echo(pending.get("diff") or "(no changes since the last pause)")
    if show:
        return
    answered = review_store.read_decision(cfg.run_dir)
    if answered is not None:  # answered elsewhere (the web UI): resume with that decision
        console.print(f"this pause was already answered ({answered.get('action')} by {answered.get('who') or 'someone'}); "
                      "resuming the run with that decision")
        decision = None
    elif edit_plan is not None:
        decision = {"stage": "plan", "action": "edit", "plan": json.loads(edit_plan.read_text())}
    elif edit_file:
        files = {}
        for item in edit_file:
            rel, _, path = item.partition("=")
            files[rel] = Path(path).read_text()
        decision = {"stage": "code", "action": "edit", "files": files}
    elif feedback:
        decision = {"stage": pending["stage"], "action": "feedback", "text": feedback}
    elif approve:
        decision = {"stage": pending["stage"], "action": "approve"}
    else:
        answer = typer.prompt("approve / feedback", default="approve")
        decision = ({"stage": pending["stage"], "action": "approve"} if answer.strip().lower() in ("a", "approve")
                    else {"stage": pending["stage"], "action": "feedback", "text": answer})
    try:
        if decision is not None:
            review_store.write_decision(cfg.run_dir, decision)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)
    _preflight_or_exit(cfg, resume=True)
    try:
        state = execute_run(cfg, resume=True, progress=_progress)
    except RunFailed as exc:
        console.print(f"[red]run failed:[/] {exc}")
        raise typer.Exit(1)
    _finish(state, cfg)


@app.command()
def demo(runs_dir: Path = typer.Option(Path("runs")), train_limit: Optional[int] = typer.Option(None),
         max_steps: int = typer.Option(24, help="model turns of the coding agent"),
         seeds: int = typer.Option(1, help="reproduce with this many seeds: intervals and claim verdicts")) -> None:
    """Replicate the bundled demo paper offline on the embedded defaults."""
    run(paper=DEMO_PAPER, rubric=None, model=None, base_url=None, judge_model=None, judge_base_url=None,
        password=None, sandbox="docker", train_limit=train_limit, epochs=None, max_tokens=2_000_000,
        max_wall=4 * 3600, runs_dir=runs_dir, resume=None, review=False, max_dollars=None, max_sandbox=3 * 3600,
        max_steps=max_steps, max_agent_time=2 * 3600, guide="auto", seed=42, seeds=seeds, gpu="auto",
        assets="offline")  # the demo's assets ship with the project: nothing to ask a network for


@app.command()
def stop(run_id: str, runs_dir: Path = typer.Option(Path("runs"))) -> None:
    """Ask a running run's coding agent to stop: it ends at its next step and the run goes on to grading."""
    from agent.loop.nodes import stop_file

    cfg = load_run_config(run_id, runs_dir)
    stop_file(cfg.run_dir).write_text("stop requested\n")
    console.print(f"run {run_id}: the agent stops at its next step (then the reproduction and grading run)")


@app.command()
def runs(runs_dir: Path = typer.Option(Path("runs")), as_json: bool = typer.Option(False, "--json")) -> None:
    """List runs: paper, status, score, started."""
    rows = list_runs(runs_dir)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table("run", "paper", "status", "score", "coverage", "started")
    for r in rows:
        t.add_row(r["run_id"], str(r["paper"])[:50], str(r["status"]),
                  "—" if r["score"] is None else f"{r['score']:.2f}",
                  "—" if r["coverage"] is None else f"{r['coverage']:.0%}", r["started"])
    Console().print(t)


@app.command()
def report(run_id: str, runs_dir: Path = typer.Option(Path("runs")),
           format: str = typer.Option("html", help="html | md | json"), open_: bool = typer.Option(False, "--open")) -> None:
    """Print a run's report (md/json) or its path (html); --open shows it in the browser."""
    from graders.report import ReportError, refresh_report

    if format not in ("html", "md", "json"):
        raise typer.BadParameter("--format must be html, md or json")
    run_dir = runs_dir / run_id
    path = run_dir / f"report.{format}"
    overrides = run_dir / "overrides.json"
    stale = overrides.exists() and path.exists() and overrides.stat().st_mtime > path.stat().st_mtime
    if (run_dir / "report.json").exists() and (stale or not path.exists()):
        try:  # a grade overridden since (or a file deleted): re-render so every format agrees
            refresh_report(run_dir)
        except ReportError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2)
    if not path.exists():
        console.print(f"[red]error:[/] {path} does not exist (is the run finished? `repro runs`)")
        raise typer.Exit(2)
    if open_:
        webbrowser.open(path.resolve().as_uri())
    if format == "html":
        typer.echo(str(path))
    else:
        sys.stdout.write(path.read_text())


@app.command()
def serve(runs_dir: Path = typer.Option(Path("runs"), help="where run directories are"),
          port: int = typer.Option(8765, help="port on 127.0.0.1"),
          open_: bool = typer.Option(False, "--open", help="open the runs list in the browser"),
          parallel: int = typer.Option(1, help="runs submitted from the browser that may run at once (each gets a "
                                               "fair share of the CPUs)"),
          endpoints: Optional[Path] = typer.Option(None, help="YAML list of model endpoints the form offers "
                                                               "(name, model, base_url); keys stay in the environment"),
          max_upload_mb: int = typer.Option(64, help="largest upload (PDF + rubric + addendum) in MiB")) -> None:
    """Web UI on http://127.0.0.1:PORT: submit papers, follow runs live, read reports, review code, override grades."""
    import uvicorn

    from agent.web.app import create_app
    from agent.web.jobs import Scheduler

    if parallel < 1:
        raise typer.BadParameter("--parallel must be at least 1")
    if endpoints is not None and not endpoints.is_file():
        raise typer.BadParameter(f"--endpoints: {endpoints} is not a file")
    runs_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    console.print(f"serving {runs_dir.resolve()} at [bold]{url}[/] (Ctrl-C stops; running runs resume at the next start)")
    if open_:
        webbrowser.open(url)
    app_ = create_app(runs_dir, scheduler=Scheduler(runs_dir, parallel=parallel), endpoints_file=endpoints,
                      max_upload_mb=max_upload_mb)
    # 127.0.0.1 only, by design: the UI starts runs, approves them and changes grades, and has no login.
    # A short graceful shutdown: open live streams must not hold a restart up.
    uvicorn.run(app_, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":  # pragma: no cover
    app()
