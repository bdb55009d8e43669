"""The learning rate each experiment trains with, and where it comes from.

The paper's rate for an experiment is the statement that names it (its method, or the rows of a
table under its method's label), on the paper's model and dataset; a statement naming another
planned experiment, or only another model ("GPT-3" in a RoBERTa run), is not its rate. A capable
model's rate is kept (checked against the paper: a disagreement is a note, and a deviation where a
scaffold runs it). A scaffolded experiment the paper gives no single rate (several, or a sweep) runs
at the scaffold's tested rate, recorded as a deviation, so neither the report nor a generated rubric
asks the scaffold for a rate it never had. An experiment without a recipe gets the paper's rate as
guidance: the agent's code sets it.
"""
from __future__ import annotations

import re

from agent.plan import Deviation, Experiment, Setting
from agent.planning import grounding as g
from papers.paper import Hyperparameter, Paper

RATE = "learning_rate"
_STOP = {"the", "and", "with", "for", "only", "our", "ours", "model", "models", "method", "base", "large", "small"}
_TABLE = re.compile(r"^(Table\s+\w+):")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


def _window(h: Hyperparameter, same: list[Hyperparameter]) -> str:
    """A sentence's part that belongs to this value: from the previous value it states for the same
    setting ("(a) head only: … learning rate 0.002; (b) LoRA: … learning rate 0.001") to this one."""
    ctx = h.context
    pos = ctx.find(h.value)
    if pos < 0:
        return ctx
    ends = [m.end() for o in same if o.value != h.value
            for m in re.finditer(rf"(?<![\d.]){re.escape(o.value)}(?!\d)", ctx[:pos])]
    return ctx[max(ends, default=0):pos + len(h.value)]


def _table_text(paper: Paper, h: Hyperparameter) -> str:
    """The caption and the row-group labels of the table a statement comes from ('' for prose)."""
    m = _TABLE.match(h.context)
    t = next((t for t in paper.tables if m and t.id == m.group(1)), None)
    if t is None:
        return ""
    labels = [r[0] for r in t.rows[t.header_rows:] if r and r[0] and not any(r[1:])]
    return " ".join([t.caption or "", *labels])


def names(e: Experiment, text: str) -> bool:
    """Whether ``text`` names experiment ``e``: its recipe's method, or a word of its name."""
    if e.recipe and (g.ROW_PATTERNS[e.recipe].search(text) or g.RECIPE_PATTERNS[e.recipe].search(text)):
        return True
    words = [w.lower().rstrip("s") for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}", e.name) if w.lower() not in _STOP]
    return any(re.search(rf"(?<![a-z]){re.escape(w)}", text, re.I) for w in words)


def _family(name: str) -> str:
    m = re.match(r"[a-z]+", _norm(name))
    return m.group() if m else ""


def statements_for(paper: Paper, e: Experiment, others: list[Experiment], paper_model: str,
                   dataset: str, name: str = RATE) -> list[tuple[Hyperparameter, str]]:
    """The paper's statements of ``name`` for experiment ``e``, each with its own words: the
    best-matching group (naming it alone counts most, then the paper's dataset, then its model)."""
    same = [h for h in paper.hyperparameters if h.name == name and g.values_of(h.value)]
    scored = []
    for h in same:
        own, wide = _window(h, same), _table_text(paper, h)
        # a statement's own words name a method first; a table's labels only when they do not
        about = own if any(names(x, own) for x in [e, *others]) else f"{own} {wide}"
        mine, theirs = names(e, about), any(names(o, about) for o in others)
        if theirs and not mine:
            continue
        models = {_family(m.group()) for m in g._MODEL_NAMES.finditer(f"{own} {wide}")}
        if models and _family(paper_model) not in models:
            continue
        score = 4 * mine + 4 * (mine and not theirs) + 2 * bool(dataset and _norm(dataset) in _norm(own)) \
            + bool(_family(paper_model) and _family(paper_model) in models) \
            + bool(_norm(paper_model) and _norm(paper_model) in _norm(own))
        scored.append((score, h, own))
    best = max((s for s, _, _ in scored), default=0)
    return [(h, own) for s, h, own in scored if s == best]


def _cite(h: Hyperparameter, own: str) -> str:
    words = re.sub(r"\s+", " ", own).strip()
    return f"{h.value} (p. {h.page}: {'…' if len(words) > 90 else ''}{words[-90:]})"


def choose(paper: Paper, experiments: list[Experiment], said: dict[str, float | None], *, capable: bool,
           paper_model: str, dataset: str, defaults: dict[str, float]) -> tuple[list[str], list[Deviation]]:
    """Set each experiment's ``settings[RATE]``; ``said``: the planning model's rate per experiment id,
    ``defaults``: each recipe's tested rate. Returns notes and deviations."""
    notes: list[str] = []
    deviations: list[Deviation] = []
    for e in experiments:
        others = [o for o in experiments if o is not e]
        stmts = statements_for(paper, e, others, paper_model, dataset)
        values = list(dict.fromkeys(v for h, _ in stmts for v in g.values_of(h.value)))
        paper_says = [_cite(h, own) for h, own in stmts][:4]
        given = said.get(e.id) if capable else None
        if isinstance(given, bool) or not isinstance(given, (int, float)) or given <= 0:
            given = None
        if given is not None:
            agrees = any(g.same_number(given, h.value) for h, _ in stmts)
            value, source = given, ("the planning model's, one of the paper's" if agrees else
                                    "the planning model's" + ("" if values else " (the paper states none for it)"))
            if values and not agrees:
                notes.append(f"{e.id}: learning rate {given:g} from the model; the paper states "
                             f"{', '.join(f'{v:g}' for v in values[:4])} for it: the model's is kept")
        elif len(values) == 1:
            value, source = values[0], "the paper's"
        else:
            value, source = None, ("the paper states several for comparable settings" if values else
                                   "the paper states none for it")
        if e.recipe:
            if value is None:
                value, source = defaults[e.recipe], f"the {e.recipe} scaffold's tested rate; " + source
            if values and not any(g.same_number(value, h.value) for h, _ in stmts):
                deviations.append(Deviation(
                    what=f"learning rate of {e.id}", paper=" or ".join(f"{v:g}" for v in values[:4]),
                    ours=f"{value:g}", reason=("the planning model's choice" if given is not None else
                                               f"the paper gives no single rate for it; the {e.recipe} "
                                               "scaffold's tested rate")))
        e.settings[RATE] = Setting(value=None if value is None else f"{value:g}", source=source, paper=paper_says)
    return notes, deviations
