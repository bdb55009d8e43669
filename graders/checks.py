"""Checked leaves: a result leaf that compares numbers is decided by arithmetic, not by a model.

A check names the experiment and metric of the submission contract (results/<experiment>/
metrics.json, as the reproduction wrote it after its start marker), what it is compared with (the
paper's value with its provenance, a range, or another reproduced number) and the tolerance.
Kinds:

* ``close``       |reproduced - paper| <= tolerance, in the paper's units (a fraction is put on the
                  paper's percent scale when the paper prints percentages);
* ``between``     low <= reproduced <= high, in the paper's units ("before is near chance");
* ``greater``     reproduced > other reproduced number (+ margin): "LoRA beats head-only";
* ``ratio_below`` reproduced / other < limit: "under 5% of the parameters".
* ``written``     the reproduction wrote the number at all: "reproduce.sh runs every experiment to
                  its results file" (a fact of the run, never a replication: it decides no status).
* ``claim``       the plan's claim ``claim``, tested on the reproduced numbers (graders.claims)
* ``configured``  the results file's ``config`` echo sets ``metric`` (a setting: learning_rate, ...)
                  to ``setting``: "trains with learning rate 0.0005". A file without that echo
                  leaves the leaf undecided: the judge reads the code instead. Decides no status.

Rubrics keep PaperBench's JSON byte-identical: checks live in a sidecar beside the rubric,
``rubric.checks.json`` = {"checks": [...]} keyed by leaf id; generated rubrics carry their own.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graders.contract import CONFIG_KEYS, find_metric, mapped_metric

SIDECAR = "rubric.checks.json"


class PaperValue(BaseModel):
    value: float
    text: str = ""
    table: str = ""
    row: str = ""
    column: str = ""
    page: int | None = None


class Quantity(BaseModel):
    """A number of the reproduction: ``metric`` is a key of metrics.json's ``metrics``, or
    ``before.<key>``, or a top-level number such as ``trainable_params``."""

    model_config = ConfigDict(extra="forbid")
    experiment: str
    metric: str


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    leaf_id: str
    kind: Literal["close", "between", "greater", "ratio_below", "written", "configured", "claim"]
    experiment: str
    metric: str
    paper: PaperValue | None = None
    """For ``close``: the paper's number, with where it is printed."""
    tolerance: float = Field(3.0, ge=0)
    """For ``close``: the largest difference that still replicates, in the paper's units."""
    percent: bool | None = None
    """The paper's scale: True when it prints 81.2 for 0.812 (None: guessed from the value)."""
    low: float | None = None
    high: float | None = None
    other: Quantity | None = None
    margin: float = 0.0
    limit: float | None = None
    setting: float | None = None
    """For ``configured``: the value the plan sets."""
    claim: str | None = None
    """For ``claim``: the plan's claim id (C1, ...); the leaf is decided by that claim's verdict
    (graders.claims.leaf_check), the one the report shows, never by the judge."""
    or_metrics: list[str] = Field(default_factory=list)
    """For ``written``: other names that count as well (the experiment's other metrics: a run that
    writes the accuracy its claims are about has run, though its first target is a GLUE score)."""
    learned: bool = False
    """For ``greater`` between two experiments: it passes only if at least one of them ended above its
    own before-training number (two models that learned nothing rank by noise)."""
    why: str = ""
    """Where the check came from: the rubric's sidecar, the rubric generator, a validated proposal."""


class CheckError(ValueError):
    """A sidecar or a proposed check is malformed, or names what the paper/results do not have."""


def load_sidecar(rubric_path: Path) -> dict[str, list[Check]]:
    """The checks beside a rubric, by leaf id ({} when there is no sidecar). A leaf may have several
    checks ("on both test sets"): it passes when all of them pass."""
    path = Path(rubric_path).with_name(SIDECAR)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        checks = [Check.model_validate(c) for c in data["checks"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise CheckError(f"{path}: not a valid checks file ({exc})") from exc
    out: dict[str, list[Check]] = {}
    for c in checks:
        out.setdefault(c.leaf_id, []).append(c)
    return out


def _same_cell(a: dict, b: dict) -> bool:
    return (a.get("table"), a.get("row"), a.get("column")) == (b.get("table"), b.get("row"), b.get("column")) \
        and abs(float(a.get("value", float("nan"))) - float(b.get("value", float("nan")))) < 1e-9


def bind_to_plan(checks: dict[str, list[Check]], plan: dict | None) -> tuple[dict[str, list[Check]], list[str]]:
    """A sidecar's checks with their experiment ids made the plan's. A rubric written beside a paper
    names experiments as one plan did ("lora"); another plan (a capable model's) names them its own
    way ("lora-query-value-r-4"). A check on a printed number belongs to the planned experiment that
    targets that very cell; checks without a cell follow the id their sibling checks were bound to.
    Returns the checks and a note per id rebound or left unbound (the check then finds no results)."""
    exps = (plan or {}).get("experiments") or []
    ids = {e.get("id") for e in exps}
    if not exps or not checks:
        return checks, []
    alias: dict[str, str] = {}
    for c in (c for cs in checks.values() for c in cs if c.paper and c.experiment not in ids):
        cell = c.paper.model_dump()
        owner = next((e["id"] for e in exps for t in e.get("targets") or [] if _same_cell(t, cell)), None)
        owner = owner or next((e["id"] for e in exps for t in e.get("before_targets") or [] if _same_cell(t, cell)), None)
        if owner:
            alias.setdefault(c.experiment, owner)
    notes = [f"checks of experiment {old!r} bound to the plan's {new!r} (it targets the same paper cells)"
             for old, new in alias.items()]
    unbound = sorted({c.experiment for cs in checks.values() for c in cs if c.experiment not in ids | set(alias)})
    notes += [f"checks of experiment {x!r}: no planned experiment targets their paper cells; they find no results"
              for x in unbound]

    def bound(c: Check) -> Check:
        other = c.other.model_copy(update={"experiment": alias.get(c.other.experiment, c.other.experiment)}) \
            if c.other else None
        return c.model_copy(update={"experiment": alias.get(c.experiment, c.experiment), "other": other})

    return {leaf: [bound(c) for c in cs] for leaf, cs in checks.items()}, notes


def evaluate_all(checks: list[Check], results: dict[str, dict]) -> dict:
    """One leaf's checks: passed when every one passes; the arithmetic of each, in order.
    ``undecided`` when none failed and one could not read its number (the judge decides the leaf)."""
    done = [evaluate(c, results) for c in checks]
    failed = any(not d["passed"] and not d.get("undecided") for d in done)
    return {**done[0], "passed": all(d["passed"] for d in done), "parts": done,
            "undecided": not failed and any(d.get("undecided") for d in done),
            "arithmetic": "; ".join(d["arithmetic"] for d in done)}


def _configured(check: Check, results: dict[str, dict]) -> dict:
    r = results.get(check.experiment)
    config = ((r or {}).get("info") or {}).get("config")
    keys = CONFIG_KEYS.get(check.metric, (check.metric,))
    key = next((k for k in keys if isinstance(config, dict) and k in config), keys[0])
    value = config.get(key) if isinstance(config, dict) else None
    if isinstance(value, dict):  # a scaffold's rates by method: the one its method runs
        value = value.get(config.get("method"))
    out = {"leaf_id": check.leaf_id, "kind": check.kind, "experiment": check.experiment, "metric": check.metric,
           "file": (r or {}).get("file"), "paper": None, "reproduced": None, "difference": None, "passed": False,
           "spec": check.model_dump()}
    if r is None:
        out["arithmetic"] = f"results/{check.experiment}/metrics.json: no results file written by the reproduction"
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or check.setting is None:
        out["undecided"] = True
        out["arithmetic"] = (f"results/{check.experiment}/metrics.json echoes no config {key!r}: "
                             "the judge reads the code for it")
    else:
        out["reproduced"] = value
        out["passed"] = math.isclose(value, check.setting, rel_tol=1e-6)
        out["arithmetic"] = (f"results/{check.experiment}/metrics.json: config {key} = {value:g} "
                             f"{'=' if out['passed'] else '!='} {check.setting:g}, the plan's")
    return out


def _lookup(results: dict[str, dict], experiment: str, metric: str, column: str = "",
            cell: dict | None = None) -> tuple[str, float, str] | None:
    """(key, value, how) of a reproduced number. The results file's own ``reproduces`` map is read
    first: the metric it says reproduces the paper's ``cell`` (a check against a printed number), or
    the one it maps to a target of that metric; then the word join (find_metric); then a top-level
    number such as ``trainable_params``. ``how``: "reproduces" | "name" | "top-level"."""
    r = results.get(experiment)
    if r is None:
        return None
    where, name = ("before", metric[len("before."):]) if metric.startswith("before.") else ("metrics", metric)
    found = mapped_metric(r, cell=cell, where=where) if cell else mapped_metric(r, name=name, where=where)
    if found is not None:
        return found[0], found[1], "reproduces"
    found = find_metric(r.get(where) or {}, name, column)
    if found is not None:
        return found[0], found[1], "name"
    v = (r.get("info") or {}).get(metric)
    return (metric, float(v), "top-level") if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _value(results: dict[str, dict], experiment: str, metric: str, column: str = "",
           cell: dict | None = None) -> float | None:
    got = _lookup(results, experiment, metric, column, cell)
    return got[1] if got else None


def _scale(check: Check, x: float) -> float:
    percent = check.percent if check.percent is not None else bool(check.paper and check.paper.value > 1.5)
    return x * 100 if percent and abs(x) <= 1.0 else x


def evaluate(check: Check, results: dict[str, dict]) -> dict:
    """{"passed", "reproduced", "paper", "difference", "tolerance", "arithmetic", "file"} — the
    arithmetic in words, for the report. ``results``: graders.contract.read_results' output."""
    if check.kind == "configured":
        return _configured(check, results)
    cell = check.paper.model_dump() if check.paper else None
    got = _lookup(results, check.experiment, check.metric, check.paper.column if check.paper else "", cell)
    for other in check.or_metrics if check.kind == "written" and got is None else []:
        if (got := _lookup(results, check.experiment, other)) is not None:
            break
    raw = got[1] if got else None
    out = {"leaf_id": check.leaf_id, "kind": check.kind, "experiment": check.experiment, "metric": check.metric,
           "file": (results.get(check.experiment) or {}).get("file"), "paper": check.paper.model_dump() if check.paper
           else None, "tolerance": check.tolerance if check.kind == "close" else None, "reproduced": None,
           "difference": None, "passed": False, "spec": check.model_dump()}
    if got is not None:  # which number was read, and how it was found
        out["key"] = got[0] if got[2] == "top-level" else ("before." if check.metric.startswith("before.") else "") + got[0]
        out["joined"] = got[2]
    if raw is None:
        r = results.get(check.experiment)
        if r is None:
            out["arithmetic"] = (f"results/{check.experiment}/metrics.json: no results file written by the "
                                 "reproduction, so there is nothing to compare")
            return out
        part = "before" if check.metric.startswith("before.") else "metrics"
        keys = ", ".join(sorted(r.get(part) or {})) or "none"
        out["arithmetic"] = (f"results/{check.experiment}/metrics.json: no number {check.metric!r} in it (its "
                             f"{part!r}: {keys}), and its 'reproduces' map names none for this"
                             + (f" paper value ({check.paper.text or check.paper.value}, column "
                                f"'{check.paper.column}')" if check.paper else " metric")
                             + ", so there is nothing to compare"
                             + (f"; {r['mapping_error']}" if r.get("mapping_error") else ""))
        return out
    x = _scale(check, raw)
    out["reproduced"] = x
    if check.kind == "written":  # the cell only finds the number: nothing is compared with the paper's
        out["passed"], out["paper"] = True, None
        out["arithmetic"] = (f"results/{check.experiment}/metrics.json: {out['key']} = {raw:.4g}, written by the "
                             "reproduction after its start marker")
    elif check.kind == "close":
        assert check.paper is not None
        d = x - check.paper.value
        out["difference"] = d
        out["passed"] = abs(d) <= check.tolerance
        out["arithmetic"] = (f"|{x:.4g} - {check.paper.value:.4g}| = {abs(d):.4g} "
                             f"{'<=' if out['passed'] else '>'} {check.tolerance:g}")
    elif check.kind == "between":
        lo = -float("inf") if check.low is None else check.low
        hi = float("inf") if check.high is None else check.high
        out["passed"] = lo <= x <= hi
        out["arithmetic"] = f"{lo:g} <= {x:.4g} <= {hi:g} is {out['passed']}"
    else:
        assert check.other is not None
        other_got = _lookup(results, check.other.experiment, check.other.metric)
        other_raw = other_got[1] if other_got else None
        if other_raw is None:
            out["arithmetic"] = (f"the other number ({check.other.experiment}, {check.other.metric}) was not written "
                                 "by the reproduction")
            return out
        y = _scale(check, other_raw)
        out["other"] = y
        if check.kind == "greater":
            out["difference"] = x - y
            out["passed"] = x > y + check.margin
            out["arithmetic"] = f"{x:.4g} - {y:.4g} = {x - y:.4g} {'>' if out['passed'] else '<='} {check.margin:g}"
            # only a ranking of two experiments reads their starts: by the metric's name, else under the key
            # its end was read from (a "score" target that the file's reproduces map gave its "accuracy")
            def start(e: str, m: str, k: str) -> float | None:
                b = _value(results, e, "before." + m.removeprefix("before."))
                return b if b is not None else _value(results, e, "before." + k)
            starts = [(e, m, start(e, m, k)) for e, m, k in
                      ((check.experiment, check.metric, got[0]), (check.other.experiment, check.other.metric,
                                                                  other_got[0]))] if check.learned else []
            ends = dict(zip((check.experiment, check.other.experiment), (raw, other_raw)))
            if starts and all(b is not None for *_, b in starts) and all(ends[e] <= b for e, _, b in starts):
                out["passed"], out["inconclusive"] = False, True
                out["arithmetic"] += ("; but neither experiment ended above its own before-training number (" +
                                      ", ".join(f"{e}: {_scale(check, b):.4g} -> {_scale(check, ends[e]):.4g}"
                                                for e, _, b in starts) + "): a ranking of models that learned "
                                      "nothing says nothing")
        else:
            ratio = x / y if y else float("inf")
            out["passed"] = ratio < (check.limit if check.limit is not None else 1.0)
            out["arithmetic"] = f"{x:.4g} / {y:.4g} = {ratio:.4g} {'<' if out['passed'] else '>='} {check.limit:g}"
    return out


def verdict_text(result: dict) -> str:
    head = "Checked by arithmetic, not judged: "
    src = f" (reproduced from {result['file']})" if result.get("file") else ""
    paper = result.get("paper")
    prov = (f"; the paper's {paper['text'] or paper['value']} is from {paper['table']}, row '{paper['row']}', column "
            f"'{paper['column']}', p. {paper['page']}") if paper and paper.get("table") else ""
    return head + result["arithmetic"] + src + prov + "."


def validate_against(check: Check, results: dict[str, dict], paper_values: set[float]) -> str | None:
    """Why a proposed check cannot be used (None: it can): it must name a number the reproduction
    wrote and, for ``close``, a value the paper's tables print."""
    if _value(results, check.experiment, check.metric, check.paper.column if check.paper else "",
              check.paper.model_dump() if check.paper else None) is None:
        return f"the reproduction wrote no {check.metric!r} for experiment {check.experiment!r}"
    if check.kind == "close" and (check.paper is None or check.paper.value not in paper_values):
        return "the paper's tables do not print that value"
    return None


# ---------------------------------------------------------------- checks proposed by the judge
NUMERIC_LEAF = ("within", "point", "%", "table", "accuracy", "score", "f1", "error", "higher", "lower", "close to")


def numeric_leaves(rubric, limit: int) -> list:
    """Result Analysis leaves that compare numbers (a digit, or words like 'within', 'Table')."""
    out = []
    for leaf in rubric.leaves():
        text = leaf.requirements.lower()
        if leaf.task_category == "Result Analysis" and (any(ch.isdigit() for ch in text)
                                                       or any(w in text for w in NUMERIC_LEAF)):
            out.append(leaf)
    return out[:limit]


def propose(model, leaves: list, results: dict[str, dict], paper_results: list) -> tuple[dict[str, list[Check]], list[dict]]:
    """For a rubric with no sidecar: the judge picks, per numeric leaf, which reproduced number and
    which printed number of the paper it compares — from menus of what exists, so it cannot invent
    either. Each proposal is validated; only valid ones decide a leaf. Returns (checks, a record
    of every proposal with why it was used or refused, for the report)."""
    quantities = [f"{e}:{m}" for e, r in results.items() for m in (r.get("metrics") or {})]
    quantities += [f"{e}:before.{m}" for e, r in results.items() for m in (r.get("before") or {})]
    printed = {f"P{i + 1}": r for i, r in enumerate(paper_results[:60])}
    if not quantities or not printed or not leaves:
        return {}, []
    menu = "\n".join(f"{k}: {r.table} | {r.row[:50]} | {r.column[:40]} = {r.text}" for k, r in printed.items())
    schema = {"type": "object", "properties": {
        "applies": {"type": "boolean"}, "reproduced": {"type": "string", "enum": quantities},
        "paper": {"type": "string", "enum": list(printed)}, "tolerance": {"type": "number"}},
        "required": ["applies", "reproduced", "paper", "tolerance"], "additionalProperties": False}
    values = {r.value for r in paper_results}
    checks: dict[str, list[Check]] = {}
    record = []
    for leaf in leaves:
        messages = [{"role": "system", "content": "You map a grading criterion to the numbers that decide it. Answer "
                                                  "with JSON only."},
                    {"role": "user", "content": f"Criterion: {leaf.requirements}\n\nNumbers the reproduction wrote "
                                                f"(experiment:metric): {', '.join(quantities)}\n\nNumbers the paper "
                                                f"prints:\n{menu}\n\nIf the criterion compares one reproduced number "
                                                "with one printed number, set applies to true, pick both, and give "
                                                "the tolerance the criterion states (in the paper's units); else "
                                                "set applies to false."}]
        try:
            c = model.complete(messages, schema=schema, temperature=0.0, seed=0, max_tokens=200)
            ans = c.parsed if isinstance(getattr(c, "parsed", None), dict) else json.loads(c.text)
        except Exception as exc:  # noqa: BLE001 - a failed proposal leaves the leaf to the judge
            record.append({"leaf_id": leaf.id, "used": False, "why": f"no proposal ({type(exc).__name__})"})
            continue
        if not isinstance(ans, dict) or not ans.get("applies"):
            record.append({"leaf_id": leaf.id, "used": False, "why": "the judge said no number decides it"})
            continue
        exp, _, metric = str(ans.get("reproduced", "")).partition(":")
        r = printed.get(ans.get("paper"))
        tol = ans.get("tolerance")
        if r is None or not isinstance(tol, (int, float)) or tol < 0 or tol > max(5.0, abs(r.value) * 0.2):
            record.append({"leaf_id": leaf.id, "used": False, "why": "the proposal named no printed number or an "
                                                                      "implausible tolerance", "proposal": ans})
            continue
        check = Check(leaf_id=leaf.id, kind="close", experiment=exp, metric=metric,
                      paper=PaperValue(value=r.value, text=r.text, table=r.table, row=r.row, column=r.column,
                                       page=r.page), tolerance=float(tol),
                      why="proposed by the judge, validated against the result files and the paper's tables")
        problem = validate_against(check, results, values)
        record.append({"leaf_id": leaf.id, "used": problem is None, "why": problem or check.why,
                       "proposal": ans})
        if problem is None:
            checks[leaf.id] = [check]
    return checks, record
