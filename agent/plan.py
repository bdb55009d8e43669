"""The replication plan: what the paper did, what we will run, and every deviation with its reason."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: labels of the registry's recipes (agent.recipes), for plans and reports
METHOD_LABELS = {
    "full": "Full fine-tuning",
    "head": "Classifier head only (transfer learning)",
    "lora": "LoRA",
    "qlora": "QLoRA (4-bit base + LoRA)",
    "sft": "Causal-LM fine-tuning (self-supervised)",
    "dpo": "Preference tuning (DPO)",
    "rlhf": "RLHF: reward model + online RL (GRPO)",
}


class Reported(BaseModel):
    """A number the paper reports, with where it came from."""

    value: float
    text: str
    table: str
    row: str
    column: str
    page: int
    metric: str = "accuracy"
    """The metric name a reproduction reports it under (results/<id>/metrics.json's keys)."""


class Setting(BaseModel):
    """A training setting of one experiment (agent.planning.settings)."""

    value: str | None
    """What the experiment trains with; None: the agent's code chooses (the paper gives no single value)."""
    source: str
    """Where the value comes from: the paper's, the planning model's, a scaffold's tested value."""
    paper: list[str] = Field(default_factory=list)
    """The paper's statements of it for this experiment, with page and context."""


class Experiment(BaseModel):
    """One experiment the paper reports results for — free-form: the agent writes its code."""

    id: str
    """Short slug; the experiment's results go to results/<id>/metrics.json (the contract)."""
    name: str
    method: str = ""
    """What is trained, on what, and how, in the paper's words."""
    recipe: str | None = None
    """A registry recipe that is a tested starting point for it (agent.recipes), or None."""
    metric: str = "accuracy"
    reported_after: Reported | None = None
    reported_before: Reported | None = None
    before_targets: list[Reported] = Field(default_factory=list)
    """The paper's numbers before training (its baseline row), compared with metrics.json's "before"."""
    claim: str | None = None
    """What the paper claims about this experiment (planning stage 1)."""
    targets: list[Reported] = Field(default_factory=list)
    """The paper's numbers this experiment should reach: always rows of the structured paper's
    results, never numbers from the model's text."""
    metrics: list[str] = Field(default_factory=list)
    evidence: str = ""
    """Why it is in the plan (model pick, a results row of the paper, ...)."""
    settings: dict[str, Setting] = Field(default_factory=dict)
    """Per-experiment settings (learning_rate); a scaffold runs with them (Hyper.learning_rate)."""


class Claim(BaseModel):
    """A claim of the paper, the unit of replication (graders.claims tests it on our numbers)."""

    id: str
    """C1, C2, ...: results files map metrics to it (metrics.json "reproduces")."""
    text: str
    kind: Literal["absolute", "comparative", "trend"]
    experiments: list[str]
    """The experiment ids it speaks of: the subject first (comparative: A of "A beats B"; trend:
    in the order the trend runs)."""
    relation: Literal["greater", "within", "increasing", "decreasing"] | None = None
    margin: float = 0.0
    """On the paper's scale: "within 1 point" is 1.0 on a 0-100 column."""
    metric: str = "accuracy"
    cells: list[Reported] = Field(default_factory=list)
    """The paper's result cells that support it (table, row, column, page)."""
    source: Literal["model", "paper"] = "model"
    """'model': the planning model stated it; 'paper': derived from the paper's numbers."""


class Deviation(BaseModel):
    what: str
    paper: str
    ours: str
    reason: str


class Hyper(BaseModel):
    epochs: int = 1
    batch_size: int = 32
    learning_rate: dict[str, float] = Field(default_factory=lambda: {
        "full": 5e-5, "head": 2e-3, "lora": 1e-3, "qlora": 1e-3, "sft": 5e-5, "dpo": 5e-4})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 64
    seed: int = 42
    train_limit: int | None = None


class Plan(BaseModel):
    task: str
    metric: str = "accuracy"
    paper_model: str
    paper_dataset: str
    model: str = "all-MiniLM-L6-v2"
    dataset: str = "movieReviewSnippets_GroundTruth.txt"
    """A bundled file under $REPRO_DATA, or the paper's own dataset by its Hub name (the broker's cache)."""
    dataset_config: str | None = None
    causal_model: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    """Model file/dir (under $REPRO_MODELS) for the causal-LM recipes (sft, dpo)."""
    experiments: list[Experiment]
    hyper: Hyper = Hyper()
    deviations: list[Deviation] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    """The paper's claims; empty: graders.claims derives them from the experiments' numbers."""
    notes: list[str] = Field(default_factory=list)
    source: Literal["model", "fallback"] = "model"
    """'fallback' when the plan keeps no value the model gave: its answers were unusable, or
    grounding replaced them all, and the plan came from the paper alone."""
    fields: dict[str, int] = Field(default_factory=dict)
    """Of the values the model gave: how many grounding kept / replaced, and how many it added."""

    addendum: str | None = None
    """The paper's addendum.md (PaperBench layout) when one sits beside the PDF: given to the agent."""

    def experiment(self, exp_id: str) -> Experiment | None:
        return next((e for e in self.experiments if e.id == exp_id), None)
