"""The submission contract: one schema, read by the agent's prompt, the reproduction and the grader.

* ``reproduce.sh`` at the submission's root runs every experiment from scratch;
* each experiment writes ``results/<experiment>/metrics.json`` (``ExperimentResult``) — and only
  files written after the reproduction's start marker count (PaperBench's rule);
* ``REPRO_SEED`` (an integer) must seed everything random; ``REPRO_SMOKE=1`` asks for a run of a
  minute or so that exercises every code path (tiny data, one epoch) — the agent's smoke test;
* outputs, caches and the agent's own state never belong to the submission (``IGNORED_DIRS``).

docs/submission.md says the same for people; ``CONTRACT_TEXT`` says it to the model.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RESULTS_GLOB = "results/*/metrics.json"
SEED_ENV = "REPRO_SEED"
SMOKE_ENV = "REPRO_SMOKE"
START_MARKER = ".repro_start"
#: never part of a submission: outputs, caches, the workspace's own state (agent/workspace_runner.py
#: keeps the same set; a test holds them equal)
IGNORED_DIRS = frozenset({".repro", "results", "__pycache__", ".git", "checkpoints", "smoke", "wandb", ".cache",
                          "outputs", ".home"})
MAX_SUBMISSION_FILE = 2 << 20
EXPERIMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

CONTRACT_TEXT = f"""The submission contract (the reproduction and the grader read only this):
- `reproduce.sh` at the workspace root runs every experiment from scratch, in a fresh container with no network.
- Each experiment writes `results/<experiment-id>/metrics.json`:
  {{"metrics": {{"<metric>": <number>, ...}}, "before": {{...same metrics before training, optional}},
   "curves": {{"loss": [[step, value], ...], optional}}, any other keys you like}}.
  Only numbers written by that run count: a results file that exists before it starts is ignored.
- `{SEED_ENV}` (an integer) must seed everything random; `{SMOKE_ENV}=1 bash reproduce.sh` must finish in a
  minute or two on tiny data, exercising every code path (the smoke run that `submit` asks for).
- These folders are never submitted: {", ".join(sorted(IGNORED_DIRS))}; files over {MAX_SUBMISSION_FILE >> 20} MiB
  are not submitted either.
"""


class ContractError(ValueError):
    """A results file breaks the contract; the message says which file and what is wrong."""


def _numbers(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object of metric name -> number")
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            continue  # a non-number (a string, a list, NaN) is not a metric; it is kept in `extra` below
        out[str(k)] = float(v)
    return out


class ExperimentResult(BaseModel):
    """``results/<experiment>/metrics.json``."""

    model_config = ConfigDict(extra="allow")

    metrics: dict[str, float] = Field(min_length=1)
    """The experiment's final numbers, by metric name (free names: accuracy, macro_f1, perplexity …)."""
    before: dict[str, float] = Field(default_factory=dict)
    """The same metrics before training, when the paper compares the two."""
    curves: dict[str, list[list[float]]] = Field(default_factory=dict)
    """Series such as the training loss: name -> [[step, value], ...]."""

    @model_validator(mode="before")
    @classmethod
    def _recipe_shape(cls, data: Any) -> Any:
        # Files from before the contract had one: {"metric", "before": {...}, "after": {...},
        # "history": [{"step", "loss"}]}; they are read as the same thing.
        if isinstance(data, dict) and "metrics" not in data and isinstance(data.get("after"), dict):
            data = dict(data)
            data["metrics"] = data.pop("after")
            hist = data.pop("history", None) or []
            data.setdefault("curves", {"loss": [[h["step"], h["loss"]] for h in hist
                                                if isinstance(h, dict) and "step" in h and "loss" in h]})
        return data

    @field_validator("metrics", "before", mode="before")
    @classmethod
    def _only_numbers(cls, value: Any, info) -> dict[str, float]:
        return _numbers(value, info.field_name)

    @field_validator("curves", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> dict:
        if not isinstance(value, dict):
            return {}
        out = {}
        for name, series in value.items():
            pts = [[float(p[0]), float(p[1])] for p in (series or []) if isinstance(p, (list, tuple)) and len(p) == 2
                   and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)]
            out[str(name)] = pts[:2000]
        return out

    def info(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)


def parse_result(path: Path) -> ExperimentResult:
    try:
        return ExperimentResult.model_validate(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: not readable JSON ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ContractError(f"{path}: {'.'.join(str(x) for x in first['loc']) or 'file'}: {first['msg']} "
                            "(expected {\"metrics\": {\"<metric>\": number, ...}, ...})") from exc


def read_results(root: Path, start_time: float | None) -> tuple[dict[str, dict], list[str]]:
    """Every results/<experiment>/metrics.json under ``root`` that keeps the contract and was
    written at or after ``start_time`` (None: no marker, nothing is trusted as produced).

    Returns ({experiment: {"metrics", "before", "curves", "file", "info"}}, [why each other file was ignored]).
    """
    results: dict[str, dict] = {}
    ignored: list[str] = []
    for path in sorted(Path(root).glob(RESULTS_GLOB)):
        rel = str(path.relative_to(root))
        if start_time is None or path.stat().st_mtime < start_time:
            ignored.append(f"{rel}: written before the reproduction started")
            continue
        try:
            r = parse_result(path)
        except ContractError as exc:
            ignored.append(f"{rel}: {str(exc).split(': ', 1)[-1]}")
            continue
        extra = dict(r.model_extra or {})
        info = {k: extra[k] for k in ("trainable_params", "total_params", "train_seconds", "n_train", "n_test",
                                      "device", "seed", "deviations", "samples") if k in extra}
        results[path.parent.name] = {"metrics": r.metrics, "before": r.before, "curves": r.curves, "file": rel,
                                     "info": info}
    return results, ignored


def submission_files(root: Path) -> list[Path]:
    """The files of a workspace that make up its submission (relative paths, sorted)."""
    root = Path(root)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in IGNORED_DIRS for part in rel.parts[:-1]) or rel.parts[0] in IGNORED_DIRS:
            continue
        if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_SUBMISSION_FILE:
            out.append(rel)
    return out


# metric names a paper prints vs names a script writes (the reported-vs-reproduced join)
_ALIASES = {"accuracy": ("accuracy", "acc", "test_accuracy", "eval_accuracy"),
            "f1": ("f1", "macro_f1", "f1_macro", "macro-f1", "test_f1"),
            "error": ("error", "error_rate", "test_error"),
            "perplexity": ("perplexity", "ppl", "eval_perplexity")}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def find_metric(metrics: dict[str, float], name: str, column: str = "") -> tuple[str, float] | None:
    """The reproduced value for the paper's metric ``name`` printed in ``column``: the exact key,
    else a known alias, else among the keys of that metric's family the one sharing most words
    with the column ("Amazon macro-F1" -> macro_f1_amazon)."""
    if name in metrics:
        return name, metrics[name]
    norm = {_norm(k): k for k in metrics}
    aliases = _ALIASES.get(name, (name,))
    for alias in aliases:
        k = norm.get(_norm(alias))
        if k is not None:
            return k, metrics[k]
    family = [k for n, k in norm.items() if any(_norm(a) in n for a in aliases)]
    if not family:
        return None
    best = max(family, key=lambda k: (len(_words(k.replace("_", " ")) & _words(column)), -family.index(k)))
    return best, metrics[best]
