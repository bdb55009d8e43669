"""Agent configurations compared by `repro eval`: frozen models loaded from YAML files.

One YAML file holds one configuration (a mapping) or several (``configs: [...]``)::

    name: gpt4o-mini
    agent_model: {model: gpt-4o-mini}            # ModelConfig; none = the embedded server
    judge_model: {model: gpt-4.1}
    run:                                         # any RunConfig field except ids and paths
      sandbox_backend: docker
      train_limit: 300
      epochs: 1
      budgets: {max_model_tokens: 500000, max_wall_s: 3600}
    resources: {num_cpus: 2, num_gpus: 0, memory_gb: 8}   # what each Ray task declares
    # resources: {num_cpus: 1, custom: {node_a: 1}}      # only on nodes with that Ray resource

Secrets are never fields: endpoints read their keys from the environment of the node a run
lands on. ``model_factory`` / ``sandbox_factory`` ("module:function") replace the default
model clients and sandboxes — the test suite and the bench name ``agent.eval.doubles`` here.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import re
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.config import ModelConfig, RunConfig

#: RunConfig fields an eval configuration may not set: the eval decides them per task.
RESERVED_RUN_FIELDS = frozenset({"run_id", "runs_dir", "paper_path", "rubric_path", "password",
                                 "agent_model", "judge_model", "seed"})
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
RAY_BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


class EvalConfigError(ValueError):
    """An eval configuration file is unreadable or invalid; the message names the file and field."""


class Resources(BaseModel):
    """What one run declares to Ray, so the scheduler places it on a node that has it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_cpus: float = 1.0
    """CPU cores reserved for the run (its sandboxes' CPU limits should fit inside)."""
    num_gpus: float = 0.0
    """GPUs reserved; > 0 places the run on a GPU node only."""
    memory_gb: float | None = None
    """Host memory reserved, in GiB (None: no reservation)."""
    custom: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources, e.g. ``{node_a: 1}``: the run lands only on a node started with
    ``ray start --resources '{"node_a": N}'`` (pins a configuration to chosen nodes)."""

    @field_validator("custom")
    @classmethod
    def _custom(cls, v: dict[str, float]) -> dict[str, float]:
        for name, amount in v.items():
            if name in RAY_BUILTIN_RESOURCES:
                raise ValueError(f"custom resource {name!r} is one of Ray's own; use num_cpus / num_gpus / memory_gb")
            if not amount > 0:
                raise ValueError(f"custom resource {name!r} must be a positive amount, not {amount}")
        return v

    def ray_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_gb:
            opts["memory"] = int(self.memory_gb * 2**30)
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


class EvalConfig(BaseModel):
    """One agent configuration: models, run settings, resources (and test-double factories)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Short id shown in the leaderboard and used in run ids: lowercase letters, digits, '-'."""
    description: str = ""
    agent_model: ModelConfig = ModelConfig()
    judge_model: ModelConfig | None = None
    """None: the agent's model grades (the report then warns that it graded its own work)."""
    run: dict[str, Any] = Field(default_factory=dict)
    """RunConfig overrides (sandbox_backend, image, train_limit, epochs, budgets, timeouts ...)."""
    resources: Resources = Resources()
    model_factory: str | None = None
    """"module:function" returning an (agent, judge) model pair or one model; tests only."""
    sandbox_factory: str | None = None
    """"module:function" returning a (role) -> Sandbox callable for one run; tests only."""
    factory_args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to both factories."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v) or len(v) > 40:
            raise ValueError(f"name {v!r} must be 1-40 lowercase letters/digits in '-'-separated words")
        return v

    @field_validator("model_factory", "sandbox_factory")
    @classmethod
    def _factory(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[\w.]+:\w+$", v):
            raise ValueError(f"{v!r} is not an import path of the form 'package.module:function'")
        return v

    @model_validator(mode="after")
    def _run_fields(self) -> "EvalConfig":
        bad = sorted(set(self.run) & RESERVED_RUN_FIELDS)
        unknown = sorted(set(self.run) - set(RunConfig.model_fields))
        if bad:
            raise ValueError(f"run: {bad} are set by `repro eval` per task, not by a configuration")
        if unknown:
            raise ValueError(f"run: unknown RunConfig field(s) {unknown}; known: {sorted(RunConfig.model_fields)}")
        # Validate the values now, not an hour into the eval.
        RunConfig(run_id="check", paper_path=Path("check.pdf"), **self.run)
        return self

    @property
    def fingerprint(self) -> str:
        """8 hex digits of the configuration's content: a changed configuration gets new runs."""
        data = self.model_dump(mode="json", exclude={"description"})
        if not data["resources"]["custom"]:  # absent before custom resources existed: same ids as then
            del data["resources"]["custom"]
        blob = json.dumps(data, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    @property
    def config_id(self) -> str:
        return f"{self.name}-{self.fingerprint}"

    def run_config(self, *, run_id: str, runs_dir: Path, paper_path: Path, rubric_path: Path | None,
                   seed: int) -> RunConfig:
        fields: dict[str, Any] = dict(self.run)
        if "seed" in RunConfig.model_fields:  # RunConfig has no seed yet; pass it on once it does
            fields["seed"] = seed
        return RunConfig(run_id=run_id, runs_dir=runs_dir, paper_path=paper_path, rubric_path=rubric_path,
                         agent_model=self.agent_model, judge_model=self.judge_model or self.agent_model, **fields)


def default_config() -> EvalConfig:
    """Used when no --config is given: the models from $REPRO_MODEL / $OPENAI_BASE_URL (else the
    embedded server), hardened Docker sandboxes, the demo's scale-down."""
    return EvalConfig(name="default", agent_model=ModelConfig.from_env(),
                      run={"sandbox_backend": "docker", "train_limit": 300, "epochs": 1})


def load_eval_configs(paths: list[Path]) -> list[EvalConfig]:
    """Every configuration in the files, in order; names must be unique."""
    configs: list[EvalConfig] = []
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise EvalConfigError(f"{path}: cannot read ({exc})") from exc
        items = data.get("configs") if isinstance(data, dict) and "configs" in data else [data]
        if not isinstance(items, list) or not items:
            raise EvalConfigError(f"{path}: expected a mapping or 'configs: [mapping, ...]'")
        for i, item in enumerate(items):
            if isinstance(item, dict) and "name" not in item and len(items) == 1:
                item = {**item, "name": re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-") or "config"}
            try:
                configs.append(EvalConfig.model_validate(item))
            except ValidationError as exc:
                where = f"{path}" + (f" (configs[{i}])" if len(items) > 1 else "")
                raise EvalConfigError(f"{where}: {exc}") from exc
    names = [c.name for c in configs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EvalConfigError(f"configuration names must be unique; repeated: {dup}")
    return configs


def import_object(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise EvalConfigError(f"cannot import {path!r}: {exc}") from exc
