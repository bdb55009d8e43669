"""The submission contract: one schema, read by the agent's prompt, the reproduction and the grader.

* ``reproduce.sh`` at the submission's root runs every experiment from scratch;
* each experiment writes ``results/<experiment>/metrics.json`` (``ExperimentResult``) — and only
  files written after the reproduction's start marker count (PaperBench's rule);
* ``REPRO_SEED`` (an integer) must seed everything random; ``REPRO_SMOKE=1`` asks for a run of a
  minute or so that exercises every code path (tiny data, one epoch) — the agent's smoke test;
* outputs, caches and the agent's own state never belong to the submission (``IGNORED_DIRS``);
* a results file may say what reproduces what (``reproduces``): which of its metrics reproduces
  which of the plan's targets (``T1``, ``T2``, ... of its experiment; ``B1``, ... before training)
  and which of the paper's claims (``C1``, ...). The report, the checks and the claims read it
  first; without it, metric names are joined to the paper's columns by words (``find_metric``).

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
- Say what reproduces what (optional, but do it when a name alone is ambiguous: several configurations,
  datasets or columns): "reproduces": {{"<metric>": {{"target": "T2", "claim": "C1"}}, ...}}, where T1, T2, ...
  are the plan's targets of that experiment in the order listed, B1, ... its before-training targets (the
  metric then is a key of "before"), and C1, ... the paper's claims as listed. Every <metric> must be a key of
  "metrics" (or of "before" for a B target); an unknown target or claim id is an error.
- `{SEED_ENV}` (an integer) must seed everything random; `{SMOKE_ENV}=1 bash reproduce.sh` must finish in a
  minute or two on tiny data, exercising every code path (the smoke run that `submit` asks for).
- These folders are never submitted: {", ".join(sorted(IGNORED_DIRS))}; files over {MAX_SUBMISSION_FILE >> 20} MiB
  are not submitted either.
"""


#: a results file's ``config`` echo: the setting names a plan uses -> the keys that may hold them, the
#: scaffolds' own first (code a model writes says "lr" as often as "learning_rate")
CONFIG_KEYS = {"learning_rate": ("learning_rate", "lr"), "max_seq_length": ("max_length", "max_seq_length", "max_len"),
               "lora_rank": ("lora_r", "lora_rank", "rank"), "lora_alpha": ("lora_alpha", "alpha"),
               "dropout": ("lora_dropout", "dropout"), "weight_decay": ("weight_decay", "wd"),
               "warmup": ("warmup_ratio", "warmup"), "epochs": ("epochs", "num_epochs", "num_train_epochs"),
               "batch_size": ("batch_size", "per_device_train_batch_size", "train_batch_size")}


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


TARGET_REF = re.compile(r"^[TB][1-9][0-9]{0,3}$")
CLAIM_REF = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


class Reproduces(BaseModel):
    """What one metric of a results file reproduces: a target of its experiment in the plan (``T1``,
    ``T2``, ... in the plan's order; ``B1``, ... the before-training targets) and/or a claim of the
    paper (``C1``, ... as the plan lists them: ``claim_ids``)."""

    model_config = ConfigDict(extra="forbid")
    target: str | None = None
    claim: str | None = None

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None and not TARGET_REF.match(v):
            raise ValueError(f"{v!r} is not a target id: T1, T2, ... (the plan's targets of this experiment) or "
                             "B1, ... (its before-training targets)")
        return v

    @field_validator("claim")
    @classmethod
    def _claim(cls, v: str | None) -> str | None:
        if v is not None and not CLAIM_REF.match(v):
            raise ValueError(f"{v!r} is not a claim id (C1, C2, ... as the plan lists the paper's claims)")
        return v

    @model_validator(mode="after")
    def _something(self) -> "Reproduces":
        if self.target is None and self.claim is None:
            raise ValueError("give a target, a claim or both")
        return self

    @property
    def where(self) -> str:
        """Which part of the results file holds the metric: "before" for a B target, else "metrics"."""
        return "before" if (self.target or "").startswith("B") else "metrics"


def mapping_problems(result: "ExperimentResult", targets=None, claims=None) -> list[str]:
    """What is wrong with a results file's ``reproduces`` map: a metric it does not report, a
    target two metrics reproduce, and — when the plan's ids are given — an id the plan lacks."""
    out, seen = [], {}
    for metric, m in result.reproduces.items():
        where = m.where
        have = result.metrics if where == "metrics" else result.before
        if metric not in have:
            out.append(f"reproduces.{metric}: {metric!r} is not a key of {where!r} (its keys: "
                       f"{', '.join(sorted(have)) or 'none'})")
        if m.target is not None:
            if m.target in seen:
                out.append(f"reproduces: target {m.target} is given to both {seen[m.target]!r} and {metric!r}")
            seen[m.target] = metric
            if targets is not None and m.target not in targets:
                out.append(f"reproduces.{metric}.target: {m.target!r} is not a target of this experiment in the "
                           f"plan (its targets: {', '.join(targets) or 'none'})")
        if m.claim is not None and claims is not None and m.claim not in claims:
            out.append(f"reproduces.{metric}.claim: {m.claim!r} is not a claim of the plan (its claims: "
                       f"{', '.join(claims) or 'none'})")
    return out


class ExperimentResult(BaseModel):
    """``results/<experiment>/metrics.json``.

    Validated with a context ``{"targets": [...], "claims": [...]}`` (the plan's ids for this
    experiment: ``plan_ids``), an unknown target or claim id in ``reproduces`` is an error too."""

    model_config = ConfigDict(extra="allow")

    metrics: dict[str, float] = Field(min_length=1)
    """The experiment's final numbers, by metric name (free names: accuracy, macro_f1, perplexity …)."""
    before: dict[str, float] = Field(default_factory=dict)
    """The same metrics before training, when the paper compares the two."""
    curves: dict[str, list[list[float]]] = Field(default_factory=dict)
    """Series such as the training loss: name -> [[step, value], ...]."""
    reproduces: dict[str, Reproduces] = Field(default_factory=dict)
    """Which metric reproduces which of the plan's targets and claims (optional): metric -> ref."""

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

    @model_validator(mode="after")
    def _mapping(self, info) -> "ExperimentResult":
        ctx = info.context or {}
        problems = mapping_problems(self, ctx.get("targets"), ctx.get("claims"))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def info(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)


def target_ids(experiment: dict) -> dict[str, tuple[dict, str]]:
    """An experiment's targets by id, as the coding agent is shown them: T1, T2, ... its targets in
    the plan's order, B1, ... its before-training targets. id -> (the target, "metrics" | "before")."""
    out: dict[str, tuple[dict, str]] = {}
    for i, t in enumerate(experiment.get("targets") or []):
        out[f"T{i + 1}"] = (t, "metrics")
    befores = experiment.get("before_targets") or ([experiment["reported_before"]]
                                                    if experiment.get("reported_before") else [])
    for i, t in enumerate(befores):
        out[f"B{i + 1}"] = (t, "before")
    return out


def claim_ids(plan: dict) -> dict[str, dict]:
    """The paper's claims by id, as the coding agent is shown them (graders.claims.plan_claims:
    the plan's own, else those derived from its numbers) -> {"text", "experiment", "kind", ...}."""
    from graders.claims import plan_claims  # claims reads this module's metric lookups

    return {c["id"]: {**c, "experiment": (c.get("experiments") or [None])[0]} for c in plan_claims(plan)}


def plan_ids(plan: dict | None, experiment: str) -> dict | None:
    """The validation context for ``experiment``'s results file: the plan's target and claim ids
    (None without a plan, or for an experiment the plan does not have: nothing to check ids against)."""
    exp = next((e for e in (plan or {}).get("experiments") or [] if e.get("id") == experiment), None)
    if exp is None:
        return None
    return {"targets": list(target_ids(exp)), "claims": list(claim_ids(plan or {}))}


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    msg = str(first["msg"]).removeprefix("Value error, ")
    loc = ".".join(str(x) for x in first["loc"])
    return f"{loc}: {msg}" if loc else msg


def parse_result(path: Path, context: dict | None = None) -> ExperimentResult:
    """One results file, validated (``context``: the plan's ids, ``plan_ids``). ContractError says
    which file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: not readable JSON ({exc})") from exc
    try:
        return ExperimentResult.model_validate(data, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        if where.startswith("reproduces") or (not where and msg.startswith("reproduces")):
            raise ContractError(f"{path}: {_first_error(exc)}") from exc
        raise ContractError(f"{path}: {where or 'file'}: {first['msg']} "
                            "(expected {\"metrics\": {\"<metric>\": number, ...}, ...})") from exc


def _lenient(path: Path, context: dict | None) -> tuple[ExperimentResult, str | None]:
    """Like parse_result, but a wrong ``reproduces`` map does not cost the numbers: they are kept,
    the map is dropped, and the error says why (the report shows it; the word join takes over)."""
    try:
        return parse_result(path, context), None
    except ContractError as exc:
        data = json.loads(Path(path).read_text())
        if not (isinstance(data, dict) and "reproduces" in data):
            raise
        try:
            r = ExperimentResult.model_validate({k: v for k, v in data.items() if k != "reproduces"})
        except ValidationError:
            raise exc from None
        return r, str(exc)[len(str(path)) + 2:]


def read_results(root: Path, start_time: float | None, plan: dict | None = None) -> tuple[dict[str, dict], list[str]]:
    """Every results/<experiment>/metrics.json under ``root`` that keeps the contract and was
    written at or after ``start_time`` (None: no marker, nothing is trusted as produced).

    Returns ({experiment: {"metrics", "before", "curves", "file", "info", "reproduces"}}, [why each
    other file was ignored]). A file whose ``reproduces`` map is wrong keeps its numbers: the map is
    dropped and ``mapping_error`` says why. With ``plan``, the map's ids are checked against the
    plan's and each entry gets the target it names (``resolve_reproduces``)."""
    results: dict[str, dict] = {}
    ignored: list[str] = []
    for path in sorted(Path(root).glob(RESULTS_GLOB)):
        rel = str(path.relative_to(root))
        if start_time is None or path.stat().st_mtime < start_time:
            ignored.append(f"{rel}: written before the reproduction started")
            continue
        try:
            r, mapping_error = _lenient(path, None)
            mapping_error = mapping_error and f"{rel}: {mapping_error}"
        except ContractError as exc:
            ignored.append(f"{rel}: {str(exc).split(': ', 1)[-1]}")
            continue
        extra = dict(r.model_extra or {})
        info = {k: extra[k] for k in ("trainable_params", "total_params", "train_seconds", "n_train", "n_test",
                                      "device", "seed", "deviations", "samples", "config") if k in extra}
        results[path.parent.name] = {"metrics": r.metrics, "before": r.before, "curves": r.curves, "file": rel,
                                     "info": info, "reproduces": {k: v.model_dump(exclude_none=True)
                                                                  for k, v in r.reproduces.items()},
                                     **({"mapping_error": mapping_error} if mapping_error else {})}
    return (resolve_reproduces(plan, results) if plan else results), ignored


def resolve_reproduces(plan: dict, results: dict[str, dict]) -> dict[str, dict]:
    """``results`` (read_results' shape) with each ``reproduces`` map checked against the plan's ids
    and each entry given what it names ("cell": the plan's target, "claim_text"). A map that names an
    id the plan lacks is dropped whole, and ``mapping_error`` says why. Idempotent."""
    exps = {e["id"]: e for e in plan.get("experiments") or []}
    claims = claim_ids(plan)
    out = {}
    for eid, r in results.items():
        r = dict(r)
        refs = {m: {k: v for k, v in ref.items() if k in ("target", "claim")}
                for m, ref in (r.get("reproduces") or {}).items()}
        if refs and eid in exps:
            try:
                ExperimentResult.model_validate({"metrics": r.get("metrics") or {"_": 0}, "before": r.get("before") or {},
                                                 "reproduces": refs}, context=plan_ids(plan, eid))
            except ValidationError as exc:
                path = r.get("file") or f"results/{eid}/metrics.json"
                r["mapping_error"] = f"{path}: {_first_error(exc)}"
                r["reproduces"] = {}
            else:
                ids = target_ids(exps[eid])
                r["reproduces"] = {m: {**ref, **({"cell": ids[ref["target"]][0]} if ref.get("target") else {}),
                                       **({"claim_text": claims[ref["claim"]]["text"]} if ref.get("claim") else {})}
                                   for m, ref in refs.items()}
        out[eid] = r
    return out


def mapped_metric(result: dict, *, target: str | None = None, cell: dict | None = None,
                  name: str | None = None, where: str = "metrics") -> tuple[str, float] | None:
    """The number a results file itself says reproduces a target (its ``reproduces`` map), found by
    the target's id, or by the paper's cell (value and column; the row when two share them), or —
    for a bare metric name such as "accuracy" — by the one mapped target of that metric. None: the
    map says nothing about it (the caller falls back to the word join, ``find_metric``)."""
    refs = [(m, ref) for m, ref in (result.get("reproduces") or {}).items() if ref.get("target")
            and ("before" if ref["target"].startswith("B") else "metrics") == where]
    values = result.get(where) or {}
    hits: list[str] = []
    if target is not None:
        hits = [m for m, ref in refs if ref["target"] == target]
    elif cell is not None:
        same = [(m, ref["cell"]) for m, ref in refs if ref.get("cell") is not None
                and abs(float(ref["cell"].get("value", float("nan"))) - float(cell.get("value", float("nan")))) < 1e-9
                and key(ref["cell"].get("column", "")) == key(cell.get("column", ""))]
        hits = [m for m, _ in same]
        if len(hits) > 1:
            hits = [m for m, c in same if key(c.get("row", "")) == key(cell.get("row", ""))]
    elif name is not None:
        hits = [m for m, ref in refs if ref.get("cell") is not None
                and key(ref["cell"].get("metric", "")) in {key(a) for a in _ALIASES.get(name, (name,))}]
    if len(hits) == 1 and hits[0] in values:
        return hits[0], values[hits[0]]
    return None


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


def key(text: str) -> str:
    """A name compared without case, spaces or punctuation ("SST-2" == "sst2")."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def find_metric(metrics: dict[str, float], name: str, column: str = "") -> tuple[str, float] | None:
    """The reproduced value for the paper's metric ``name`` printed in ``column``: the exact key,
    else a known alias, else among the keys of that metric's family the one sharing most words
    with the column ("Amazon macro-F1" -> macro_f1_amazon)."""
    if name in metrics:
        return name, metrics[name]
    norm = {key(k): k for k in metrics}
    aliases = _ALIASES.get(name, (name,))
    for alias in aliases:
        k = norm.get(key(alias))
        if k is not None:
            return k, metrics[k]
    family = [k for n, k in norm.items() if any(key(a) in n for a in aliases)]
    if not family:
        return None
    best = max(family, key=lambda k: (len(_words(k.replace("_", " ")) & _words(column)), -family.index(k)))
    return best, metrics[best]
