"""``repro sandbox ...``: build the image, diagnose the engine, reap leftovers, run the hostile self-test.

The main CLI mounts it with ``app.add_typer(sandbox_app, name="sandbox")``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

sandbox_app = typer.Typer(help="Sandbox image, diagnostics and self-test.", no_args_is_help=True)


@sandbox_app.command()
def build(
    offline: bool = typer.Option(True, "--offline/--dockerfile", help="offline rootfs import (default) or Dockerfile build"),
    gpu: bool = typer.Option(False, help="with --dockerfile: build the CUDA image"),
    force: bool = typer.Option(False, help="rebuild even when the tag exists"),
    dry_run: bool = typer.Option(False, help="print the tag / build args and exit"),
) -> None:
    """Build the sandbox image (repro-sandbox:<hash> and :latest)."""
    from sandbox import image

    if offline:
        if dry_run:
            inputs = image.collect_inputs()
            typer.echo(f"{inputs.tag}  ({len(inputs.dists)} distributions)")
            return
        typer.echo(image.ensure_image(force=force, log=typer.echo))
    else:
        if dry_run:
            for k, v in image.dockerfile_build_args(gpu).items():
                typer.echo(f"--build-arg {k}={v}")
            return
        typer.echo(image.build_dockerfile(gpu, log=typer.echo))


@sandbox_app.command()
def doctor() -> None:
    """What engine, runtime, image, GPU and limits are in effect, and what is missing (exit 1 if not ready)."""
    from sandbox.doctor import diagnose

    rep = diagnose()
    for line in rep.lines():
        typer.echo(line)
    raise typer.Exit(0 if rep.ready else 1)


@sandbox_app.command()
def reap(run_id: str = typer.Option(None, help="remove everything of this run (default: only stale leftovers)")) -> None:
    """Remove leftover sandbox containers and volumes (runs do this themselves at start-up and on resume)."""
    from sandbox import docker as dk

    removed = dk.reap(run_id)
    typer.echo(f"removed {removed['containers']} container(s), {removed['volumes']} volume(s)")


@sandbox_app.command()
def selftest(extra: list[str] = typer.Argument(None)) -> None:
    """Run the hostile cases (tests/hostile/sandbox) and print the figure."""
    root = Path(__file__).resolve().parents[1]
    bench = root / "bench" / "hostile.py"
    if not bench.exists():
        typer.echo("bench/hostile.py not found (run from a source checkout)")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, str(bench), *(extra or [])], cwd=root))


if __name__ == "__main__":
    sandbox_app()
