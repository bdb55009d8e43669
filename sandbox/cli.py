"""``repro sandbox ...``: build the image, diagnose the engine, run the hostile self-test.

The main CLI mounts it with ``app.add_typer(sandbox_app, name="sandbox")``.
"""
from __future__ import annotations

import os
import shutil
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


def doctor_report() -> tuple[list[str], list[str]]:
    """(facts, problems in plain words with the fix)."""
    facts: list[str] = []
    problems: list[str] = []
    if not shutil.which("busybox"):
        problems.append("busybox is missing (needed for the offline image): apt-get install -y busybox-static")
    try:
        from sandbox import docker as dk
        from sandbox import image
        from sandbox.policy import SandboxPolicy
    except ImportError as e:
        problems.append(f"the docker Python SDK is not importable ({e}): pip install 'docker>=7'")
        return facts, problems
    try:
        info = dk.engine_info()
        ver = dk.engine_version()
    except Exception as e:  # noqa: BLE001 - doctor reports, never raises
        problems.append(f"no Docker engine answers on {dk.docker_host()}: install docker.io and start dockerd ({e})")
        return facts, problems
    facts.append(f"engine: Docker {ver.get('Version')} (API {ver.get('ApiVersion')}) on {dk.docker_host()}")
    rts = sorted((info.get("Runtimes") or {}).keys())
    facts.append(f"runtimes: {', '.join(rts)} (default {info.get('DefaultRuntime')})")
    if "runsc" not in rts:
        problems.append("gVisor (runsc) is not configured: containers use runc; strict_runtime=True will refuse "
                        "to start. Install gVisor and add it to /etc/docker/daemon.json runtimes to enable it.")
    facts.append(f"cgroups: v{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver')})")
    if not info.get("MemoryLimit", True):
        problems.append("the kernel does not support memory limits: OOM protection is off")
    if not info.get("PidsLimit", True):
        problems.append("the kernel does not support pids limits: fork bombs are not bounded")
    facts.append(f"GPU for containers: {'yes' if dk.gpu_available() else 'no'}")
    try:
        tag = image.collect_inputs().tag
        present = dk.image_exists(tag)
        facts.append(f"image: {tag} {'present' if present else 'MISSING'}; latest "
                     f"{'present' if dk.image_exists(image.LATEST) else 'missing'}")
        if not present:
            problems.append(f"sandbox image {tag} is not built: run `repro sandbox build` (about a minute, offline)")
    except Exception as e:  # noqa: BLE001
        problems.append(f"cannot compute the image inputs: {e}")
    p = SandboxPolicy()
    facts.append(f"limits: memory {p.mem_limit} (no swap), pids {p.pids_limit}, cpus {p.cpus:g}, /tmp {p.tmp_size}, "
                 f"/dev/shm {p.shm_size}, workspace {p.workspace_size}, lifetime {p.max_lifetime_s}s, "
                 f"output {p.output_cap_bytes} B/stream, network none, read-only root, user {p.user}")
    return facts, problems


@sandbox_app.command()
def doctor() -> None:
    """Is the engine reachable? runsc? image? GPU? limits? — and how to fix what's missing."""
    facts, problems = doctor_report()
    for f in facts:
        typer.echo(f"  ok   {f}")
    for p in problems:
        typer.echo(f"  !!   {p}")
    fatal = [p for p in problems if "gVisor" not in p]
    typer.echo("sandbox: ready" if not fatal else "sandbox: NOT ready")
    raise typer.Exit(1 if fatal else 0)


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
