"""Checks made before a run directory exists: everything cheap that would doom the run later.

A run that can never work must not leave a directory behind, nor offer ``--resume``. Each check
returns a plain sentence naming the problem and the fix; the CLI prints them all and exits 2.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.config import ModelConfig, RunConfig

MIN_FREE_BYTES = int(float(os.environ.get("REPRO_MIN_FREE_GB", "2")) * (1 << 30))


@dataclass(frozen=True)
class Problem:
    what: str  # paper | rubric | model | sandbox | disk
    message: str

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


def check_paper(path: Path, password: str | None) -> list[Problem]:
    from papers import PaperError, load_paper

    try:
        load_paper(path, password=password)
    except PaperError as exc:
        return [Problem("paper", str(exc))]
    return []


def check_rubric(cfg: RunConfig) -> list[Problem]:
    """A given rubric, or the one beside the PDF, must load (PaperBench's own validation)."""
    from graders.rubric import RubricError, load_rubric

    path = cfg.rubric_path or Path(cfg.paper_path).with_name("rubric.json")
    if cfg.rubric_path is None and not path.is_file():
        return []  # none given: one is generated from the paper at grading
    try:
        load_rubric(path)
    except (RubricError, OSError, ValueError) as exc:
        return [Problem("rubric", f"{path}: {exc}")]
    return []


def check_model(mc: ModelConfig, role: str) -> list[Problem]:
    from agent.llm import ModelError, OpenAIChatModel, embedded_model_path
    from agent.scripted import ENV_VAR

    if os.environ.get(ENV_VAR):
        return []  # a scripted model file replaces every endpoint (tests)
    if mc.embedded:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return [Problem("model", f"the {role} model is the embedded SmolLM2, but llama-cpp-python is not "
                                     "installed: run scripts/setup.sh, or give --base-url / OPENAI_BASE_URL")]
        try:
            embedded_model_path()
        except ModelError as exc:
            return [Problem("model", str(exc))]
        return []
    model = OpenAIChatModel(mc.model or "gpt-4o-mini", base_url=mc.base_url, timeout=20.0, retry_deadline_s=10.0)
    model.connect_deadline_s = 3.0
    try:
        model.complete([{"role": "user", "content": "Reply with the word OK."}], max_tokens=2)
    except ModelError as exc:
        return [Problem("model", f"the {role} model does not answer: {exc}")]
    except Exception as exc:  # noqa: BLE001 - any refusal of a 2-token request dooms the run
        return [Problem("model", f"the {role} model {mc.model!r} at {mc.base_url or 'api.openai.com'} refused a "
                                 f"one-line test request: {type(exc).__name__}: {str(exc)[:300]}")]
    return []


def check_sandbox(cfg: RunConfig) -> list[Problem]:
    if cfg.sandbox_backend != "docker":
        return []
    from sandbox.base import SandboxUnavailable

    try:
        from sandbox import docker as dk
        from sandbox.image import LATEST

        dk.client()
        tag = cfg.image or LATEST
        if not dk.image_exists(tag):
            return [Problem("sandbox", f"the sandbox image {tag} is not built: run `repro sandbox build` "
                                       "(offline, a minute or two) or scripts/setup.sh")]
    except SandboxUnavailable as exc:
        return [Problem("sandbox", str(exc))]
    except ImportError as exc:
        return [Problem("sandbox", f"the Docker SDK is missing ({exc}): pip install 'docker>=7'")]
    return []


def check_disk(runs_dir: Path, need: int | None = None) -> list[Problem]:
    need = MIN_FREE_BYTES if need is None else need
    here = Path(runs_dir).resolve()
    while not here.exists():
        here = here.parent
    free = shutil.disk_usage(here).free
    if free < need:
        return [Problem("disk", f"only {free / 2**30:.1f} GiB free under {here}; a run needs at least "
                                f"{need / 2**30:.1f} GiB (checkpoints, logs, the reproduction's files). "
                                "Free some space or pass --runs-dir elsewhere")]
    return []


def preflight(cfg: RunConfig, *, resume: bool = False) -> list[Problem]:
    """Every problem found (empty: go). On resume the paper was read already; the rest may have changed."""
    problems: list[Problem] = []
    if not resume:
        problems += check_paper(Path(cfg.paper_path), cfg.password)
        problems += check_rubric(cfg)
    problems += check_disk(cfg.runs_dir)
    problems += check_sandbox(cfg)
    problems += check_model(cfg.agent_model, "agent")
    if cfg.judge_model != cfg.agent_model:
        problems += check_model(cfg.judge_model, "judge")
    return problems
