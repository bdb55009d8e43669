"""Run settings: one frozen model. Secrets are never fields here (they stay in the environment)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str | None = None
    """Model name at the endpoint; None with no base_url means the embedded SmolLM2 server."""
    base_url: str | None = None
    """OpenAI-protocol endpoint (OpenAI, vLLM, Ollama, llama.cpp). None + no model = embedded."""

    @classmethod
    def from_env(cls, model: str | None = None, base_url: str | None = None) -> "ModelConfig":
        return cls(
            model=model or os.environ.get("REPRO_MODEL"),
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
        )

    @property
    def embedded(self) -> bool:
        return not self.base_url and not self.model


class Budgets(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_model_tokens: int = 2_000_000
    """Prompt + completion tokens across all agent calls (the judge is budgeted separately)."""
    max_wall_s: float = 4 * 3600
    """Wall time for the whole run, checked between nodes."""
    max_debug_iterations: int = 2
    """Edit-and-retry rounds after a failed execution."""
    max_reasks: int = 2
    """Re-asks after a malformed model output before falling back (and saying so)."""


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    runs_dir: Path = Path("runs")
    paper_path: Path
    rubric_path: Path | None = None
    password: str | None = Field(default=None, exclude=True, repr=False)
    """PDF password: used to open the file only; excluded from dumps so it never reaches state."""
    agent_model: ModelConfig = ModelConfig()
    judge_model: ModelConfig = ModelConfig()
    sandbox_backend: Literal["docker", "local", "fake"] = "docker"
    image: str | None = None
    exec_timeout_s: float = 1800
    reproduce_timeout_s: float = 3600
    train_limit: int | None = None
    """Scale-down: cap training sentences (recorded as a deviation)."""
    epochs: int | None = None
    """Override the planned number of epochs (recorded as a deviation)."""
    budgets: Budgets = Budgets()

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_id
