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

from agent.plan import Deviation, Experiment, Plan, Setting
from agent.planning import grounding as g
from agent.recipes import get_recipe
from agent.recipes.base import template_config
from graders.contract import CONFIG_KEYS
from papers.paper import Hyperparameter, Paper

RATE = "learning_rate"
#: the paper's setting -> the scaffold's CONFIG key (agent.recipes); epochs and batch size are the
#: plan's (build_plan's deviations), the learning rate is chosen above
_PLAN_WIDE = {RATE, "epochs", "batch_size", "training_steps"}  # the training length is the plan's epochs
SCAFFOLD_KEYS = {k: v[0] for k, v in CONFIG_KEYS.items() if k not in _PLAN_WIDE}  # each a plan.hyper field too
_LORA_ONLY = {"lora_rank", "lora_alpha"}  # settings of a LoRA module: no other method has them
_STOP = {"the", "and", "with", "for", "only", "our", "ours", "model", "models", "method", "base", "large", "small"}
_TABLE = re.compile(r"^(Table\s+\w+):")


def _window(h: Hyperparameter, same: list[Hyperparameter]) -> str:
    """A sentence's part that belongs to this value: from the previous value it states for the same
    setting, or the clause's start ("(a) head only: … learning rate 0.002; (b) LoRA: … learning rate
    0.001"), to this one."""
    ctx = h.context
    pos = ctx.find(h.value)
    if pos < 0:
        return ctx
    ends = [m.end() for o in same if o.value != h.value
            for m in re.finditer(rf"(?<![\d.]){re.escape(o.value)}(?!\d)", ctx[:pos])]
    ends += [m.end() for m in re.finditer(";", ctx[:pos])]  # a clause of its own: "…; (b) LoRA: rank 8"
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
    m = re.match(r"[a-z]+", g.key(name))
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
        score = 4 * mine + 4 * (mine and not theirs) + 2 * bool(dataset and g.key(dataset) in g.key(own)) \
            + bool(_family(paper_model) and _family(paper_model) in models) \
            + bool(g.key(paper_model) and g.key(paper_model) in g.key(own))
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


def _numbers(text: str) -> list[float]:
    """A stated value's numbers, a percentage as a fraction ("6%" warm-up is a ratio of 0.06)."""
    return [v / 100 if re.search(r"\d\s*%", text) else v for v in g.values_of(text)]


def apply_others(paper: Paper, plan: Plan, *, paper_model: str, dataset: str) -> list[Deviation]:
    """Every other setting the paper states for an experiment, in its ``settings``. A scaffold runs
    the paper's value where the paper states one for its experiment (plan.hyper); where it still runs
    another (a value the scaffold caps, another experiment's on a shared field, no single value
    stated), the scaffold's is recorded as a deviation. A statement of no planned experiment (another
    model's steps, a decoding beam) is no setting of this run."""
    experiments = plan.experiments
    found: dict[tuple[str, str], list[tuple[Hyperparameter, str]]] = {}
    for name in dict.fromkeys(h.name for h in paper.hyperparameters):
        for e in experiments if name not in _PLAN_WIDE else []:
            if name in _LORA_ONLY and not _is_lora(e):
                continue
            stmts = statements_for(paper, e, [o for o in experiments if o is not e], paper_model, dataset, name)
            if stmts:
                found[(e.id, name)] = stmts
    applied: dict[str, str] = {}  # Hyper field -> the experiment whose paper value set it
    for (eid, name), stmts in found.items():
        e, key = plan.experiment(eid), SCAFFOLD_KEYS.get(name)
        values = list(dict.fromkeys(v for h, _ in stmts for v in _numbers(h.value)))
        if e.recipe and key and len(values) == 1 and key not in applied and _applies(e, name):
            setattr(plan.hyper, key, type(getattr(plan.hyper, key))(values[0]))
            applied[key] = eid
    deviations = []
    for (eid, name), stmts in found.items():
        e, key = plan.experiment(eid), SCAFFOLD_KEYS.get(name)
        texts = list(dict.fromkeys(h.value for h, _ in stmts))
        values = list(dict.fromkeys(v for h, _ in stmts for v in _numbers(h.value)))
        cites = [_cite(h, own) for h, own in stmts][:4]
        ours = get_recipe(e.recipe).config(plan).get(key) if e.recipe and key and _applies(e, name) else None
        if ours is None or isinstance(ours, (dict, list, str, bool)):
            e.settings[name] = Setting(value=texts[0] if len(texts) == 1 else None, paper=cites,
                                       source="the paper's" if len(texts) == 1 else
                                       "the paper states several for comparable settings")
            continue
        if any(abs(ours - v) <= 1e-9 * max(1.0, abs(v)) for v in values):
            e.settings[name] = Setting(value=f"{ours:g}", paper=cites, source="the paper's" if len(values) == 1 else
                                       "one of the paper's (it states several for comparable settings)")
            continue
        other = applied.get(key)
        why = (f"the {e.recipe} scaffold runs {key} {ours:g}, the value of experiment {other}" if other and other != eid
               else f"the paper gives no single value for it; the {e.recipe} scaffold's tested setting"
               if len(values) > 1 else f"the {e.recipe} scaffold's tested setting")
        e.settings[name] = Setting(value=f"{ours:g}", source=why, paper=cites)
        deviations.append(Deviation(what=f"{name.replace('_', ' ')} of {eid}", paper=" or ".join(texts[:4]),
                                    ours=f"{ours:g}", reason=why))
    return deviations


def _scaffold_lora(recipe: str | None) -> bool:
    """Whether a recipe's scaffold trains a LoRA module (the LoRA recipes, and the causal-LM ones' peft)."""
    return bool(recipe) and (recipe in ("lora", "qlora") or template_config(get_recipe(recipe).template).get("peft") == "lora")


def _is_lora(e: Experiment) -> bool:
    return _scaffold_lora(e.recipe) or bool(g.ROW_PATTERNS["lora"].search(e.name))


def _applies(e: Experiment, name: str) -> bool:
    """Whether the experiment's scaffold sets this setting: a LoRA module's (its dropout too) only on LoRA."""
    return name not in _LORA_ONLY | {"dropout"} or _scaffold_lora(e.recipe)
