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
        """The agent's endpoint: the flags, else $REPRO_MODEL / $OPENAI_BASE_URL. The model name
        ``embedded`` is the embedded SmolLM2 server, whatever the environment says."""
        model = model or os.environ.get("REPRO_MODEL")
        if _is_embedded(model):
            if base_url:
                raise ValueError(f"the model 'embedded' runs on this machine: it takes no base URL (got {base_url})")
            return cls()
        return cls(model=model, base_url=base_url or os.environ.get("OPENAI_BASE_URL"))

    @classmethod
    def for_judge(cls, agent: "ModelConfig", model: str | None = None, base_url: str | None = None) -> "ModelConfig":
        """The judge's endpoint, chosen apart from the agent's: ``embedded`` is the embedded SmolLM2
        whatever the agent is; a judge model name alone is asked at the agent's endpoint, a judge base
        URL alone keeps the agent's model name; neither: the agent's own model judges."""
        if _is_embedded(model):
            if base_url:
                raise ValueError("the judge model 'embedded' runs on this machine: give no --judge-base-url with it")
            return cls()
        if model is None and base_url is None:
            return agent
        return cls(model=model or agent.model, base_url=base_url or agent.base_url)

    @property
    def embedded(self) -> bool:
        return not self.base_url and not self.model


def _is_embedded(model: str | None) -> bool:
    return bool(model) and model.strip().lower() == "embedded"


class Price(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_per_mtok: float
    """US dollars per million prompt tokens."""
    output_per_mtok: float
    """US dollars per million completion tokens."""


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4o": Price(input_per_mtok=2.50, output_per_mtok=10.00),
    "gpt-4.1": Price(input_per_mtok=2.00, output_per_mtok=8.00),
    "gpt-4.1-mini": Price(input_per_mtok=0.40, output_per_mtok=1.60),
    "smollm2-135m-instruct": Price(input_per_mtok=0.0, output_per_mtok=0.0),
    "scripted": Price(input_per_mtok=0.0, output_per_mtok=0.0),
}


class Budgets(BaseModel):
    """Limits checked by the graph's routers between nodes; exceeding one stops the run cleanly
    (status "stopped", a partial report whose stop_reason names the budget)."""

    model_config = ConfigDict(frozen=True)

    max_model_tokens: int = 2_000_000
    """Prompt + completion tokens across all agent calls (the judge is budgeted separately)."""
    max_dollars: float | None = None
    """Agent model spend in US dollars, from ``prices``; None = no dollar limit."""
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    """Price table by model name (exact match, then the longest prefix match)."""
    unknown_price: Price = Price(input_per_mtok=5.0, output_per_mtok=15.0)
    """Used for a model missing from ``prices`` (deliberately not zero: an unknown model is not free)."""
    max_wall_s: float = 4 * 3600
    """Wall time for the whole run, checked between nodes (and capping each sandbox command)."""
    max_sandbox_s: float = 3 * 3600
    """Seconds spent in sandbox commands (smoke runs + the reproduction), summed."""
    max_steps: int = 60
    """Model turns of the coding agent's tool loop."""
    max_agent_s: float = 2 * 3600
    """Wall time of the tool loop (the reproduction and grading come after it)."""
    max_malformed_in_row: int = 3
    """Malformed replies in a row (unknown tool, bad arguments, not JSON) that end the loop."""
    max_repeats_in_row: int = 3
    """Identical tool calls (same tool, same arguments) in a row, each failing the same way, that end
    the loop (exit ``stuck``); from the second one, the model is shown the failure (agent/loop/spin.py)."""
    reminder_every: int = 5
    """A time-and-budget reminder every this many model turns."""
    max_reasks: int = 2
    """Re-asks after a malformed model output before falling back (and saying so)."""
    max_review_rounds: int = 5
    """Reviewer feedback rounds per stage before the gate stops asking and goes on."""

    def price(self, model: str) -> Price:
        if model in self.prices:
            return self.prices[model]
        for name in sorted(self.prices, key=len, reverse=True):
            if model.startswith(name):
                return self.prices[name]
        return self.unknown_price

    def dollars(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.price(model)
        return (prompt_tokens * p.input_per_mtok + completion_tokens * p.output_per_mtok) / 1e6


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
    assets: Literal["auto", "online", "offline"] = Field(
        default_factory=lambda: os.environ.get("REPRO_ASSETS", "auto"))  # type: ignore[arg-type]
    """Where the paper's models, data and packages come from: "online" = the asset broker fetches
    them (from HF_ENDPOINT / the pip index, into a read-only cache the sandboxes see); "offline" =
    only the cache and the catalogue of assets shipped as packages; "auto" = online when the Hub
    answers. The sandboxes never get a network either way."""
    gpu: Literal["auto", "off"] = "auto"
    """"auto": Docker sandboxes get the NVIDIA GPU when the engine can hand it over (use a CUDA image:
    `repro sandbox build --dockerfile sandbox/Dockerfile.gpu`, then --image); "off": CPU only."""
    sandbox_cpus: float | None = Field(None, gt=0)
    """CPU cores each of the run's Docker sandboxes may use (default: all). `repro eval` sets a
    fair share when runs go in parallel, so they do not oversubscribe the machine."""
    exec_timeout_s: float = 1800
    reproduce_timeout_s: float = 3600
    train_limit: int | None = None
    """Scale-down: cap training sentences (recorded as a deviation)."""
    epochs: int | None = None
    """Override the planned number of epochs (recorded as a deviation)."""
    budgets: Budgets = Budgets()
    review: bool = False
    """Pause for a human after the plan and after the code (``repro run --review``)."""
    guide: Literal["auto", "on", "off"] = "auto"
    """Narrow the tool menu at each step to what fits the workspace's state (scaffold, smoke job,
    wait, submit): for weak models. "auto": on for a model that says it is weak (the embedded one)."""
    seed: int = 42
    """REPRO_SEED of the reproduction run."""
    propose_checks: int = 10
    """For a given rubric with no checks sidecar: how many numeric leaves the judge may map to a
    reproduced number and a printed one (validated, then decided by arithmetic). 0: none."""
    seeds: int = Field(1, ge=1, le=20)
    """Re-run reproduce.sh this many times (REPRO_SEED = seed, seed+1, ...), each in a fresh container:
    the report gives every metric as a mean with a 95% interval and a verdict per claim."""

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_id
