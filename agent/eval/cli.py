"""The `repro eval` command (registered by agent/cli.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def eval_cmd(
    papers_dir: Path = typer.Argument(..., help="PaperBench-style set: <paper-id>/paper.pdf and rubric.json "
                                                "(optional addendum.md, blacklist.txt, config.yaml)"),
    seeds: int = typer.Option(3, "--seeds", help="independent runs per paper and configuration"),
    config: Optional[List[Path]] = typer.Option(None, "--config", help="agent configuration YAML (repeatable); "
                                                "default: $REPRO_MODEL / embedded model, Docker sandbox"),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="runs at once (default: sized to this "
                                           "machine's cores and memory)"),
    ray: Optional[str] = typer.Option(None, "--ray", help="address of an existing Ray cluster (e.g. "
                                      "ray://head:10001 or head:6379); default: a local instance on 127.0.0.1"),
    out: Path = typer.Option(Path("eval-out"), "--out", help="output directory (shared storage on a cluster)"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="rerun failed runs (as new attempts)"),
    as_json: bool = typer.Option(False, "--json", help="print the invocation summary as JSON on stdout"),
    progress_every: float = typer.Option(15.0, help="seconds between lines saying where each run in flight is"),
) -> None:
    """Run every paper × seed × configuration (resumable) and write the leaderboard."""
    from agent.eval.config import EvalConfigError, default_config, load_eval_configs
    from agent.eval.execution import EvalExecutionError
    from agent.eval.main import EvalBusy, run_eval
    from agent.eval.tasks import PaperSetError

    try:
        configs = load_eval_configs(list(config)) if config else [default_config()]
        summary = run_eval(papers_dir, configs, seeds=seeds, out=out, parallel=parallel, ray_address=ray,
                           retry_failed=retry_failed,
                           # soft_wrap: a progress line stays one line in a log file, however long
                           echo=lambda line: console.print(line, markup=False, soft_wrap=True),
                           progress_every=progress_every)
    except (EvalConfigError, PaperSetError, EvalBusy, EvalExecutionError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)
    lb = summary["leaderboard"]
    console.print(f"leaderboard: {lb['html']} (also .md .json .csv .png)")
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(lb["html"])
