"""Shared fixtures for the agent's integration tests: a models dir with MiniLM and a tiny GGUF."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def recipe_env(tmp_path_factory) -> dict[str, str]:
    """$REPRO_MODELS (MiniLM + tiny.gguf) and $REPRO_DATA for running rendered recipes on the host."""
    import importlib.util

    from agent.recipes.tiny import write_tiny_gguf
    from sandbox.assets import host_assets

    assets = host_assets()
    models = tmp_path_factory.mktemp("models")
    (models / "all-MiniLM-L6-v2").symlink_to(assets.model_path)
    if importlib.util.find_spec("gguf") is not None:  # the causal-LM tests skip without it
        write_tiny_gguf(models / "tiny.gguf")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(REPRO_MODELS=str(models), REPRO_DATA=str(assets.data_dir), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return env


def run_script(cwd: Path, cmd: str, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def submission_files(plan) -> dict[str, str]:
    """What the scaffold tool writes for every experiment of the plan, in order (recipe
    deviations first, as the planner records them)."""
    from agent.recipes import get_recipe, scaffold_files

    for e in plan.experiments:
        for d in get_recipe(e.recipe).deviations(plan, {"cuda": False}):
            if d not in plan.deviations:
                plan.deviations.append(d)
    files: dict[str, str] = {}
    for e in plan.experiments:
        files.update(scaffold_files(plan, e.id, e.recipe, files))
    return files
