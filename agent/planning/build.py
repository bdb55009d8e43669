"""Assemble the plan from the grounded stages: experiments with ids and targets, the scale-down,
and every substitution this machine forces, each a deviation with its reason — the paper's own
method planned on a recipe that is not that method included ("approximated by LoRA: no recipe
implements <method>") — and the deviations checked for consistency (``check_deviations``: a
decoder never stands in for an encoder task's model)."""
from __future__ import annotations

import json

from agent.context import Offline
from agent.plan import Claim, Deviation, Experiment, Hyper, Plan, Reported
from agent.planning import grounding as g
from agent.planning import settings
from agent.planning.assets import choose_dataset, choose_model, encoder_entry, is_decoder
from agent.recipes import get_recipe, registry
from sandbox.broker import catalogue
from graders.claims import derive_claims
from papers.paper import Paper

# cheapest first: a failure shows early (experiments without a recipe come last)
RECIPE_ORDER = {"head": 0, "lora": 1, "qlora": 2, "full": 3, "sft": 4, "dpo": 5, "rlhf": 6}
CAUSAL_RECIPES = ("sft", "dpo", "rlhf")


def approximation(e: Experiment) -> Deviation | None:
    """An experiment planned on a recipe whose method its own name and method do not name (the
    paper's adapters on the LoRA scaffold): the recipe only approximates it."""
    if not e.recipe:
        return None
    said = f"{e.name} {e.method}"
    if g.ROW_PATTERNS[e.recipe].search(e.name) or g.RECIPE_PATTERNS[e.recipe].search(said):
        return None
    label = g.recipe_label(e.recipe)
    return Deviation(what=f"method of {e.id}", paper=(e.method or e.name)[:120], ours=f"{label} (recipe {e.recipe})",
                     reason=f"approximated by {label}: no recipe implements {e.name}")


def check_deviations(deviations: list[Deviation], *, decoder_task: bool) -> tuple[list[Deviation], list[str]]:
    """Deviations that contradict themselves or the task, fixed, each with a note: on an encoder
    task the base model's stand-in is an encoder, never a decoder; a 'substitution' to the same
    thing and a repeated one are dropped."""
    causal = {g.key(a) for e in catalogue.ENTRIES if e.kind == "model" and e.role == "causal-lm"
              for a in (e.name, *e.answers_to)}
    out, notes = [], []
    for d in deviations:
        if d in out:
            continue
        if g.key(d.paper) == g.key(d.ours):
            notes.append(f"deviation check: {d.what!r} substitutes {d.paper!r} with itself: dropped")
            continue
        if d.what == "base model" and not decoder_task and (g.key(d.ours) in causal or is_decoder(d.ours)):
            enc = encoder_entry()
            notes.append(f"deviation check: {d.what!r} put the decoder {d.ours!r} in for {d.paper!r} on an encoder "
                         f"task: the stand-in is the encoder {enc.name!r}")
            d = Deviation(what=d.what, paper=d.paper, ours=enc.name,
                          reason=f"{d.paper} stands in as a classification model: the scaffolds need an encoder; "
                                 f"the closest asset available locally is {enc.about}")
        out.append(d)
    return out, notes


def _ids(experiments: list[dict]) -> list[str]:
    """A recipe's name when one experiment uses it (results/lora/ …), else a slug of the name."""
    counts: dict[str, int] = {}
    for e in experiments:
        if e.get("recipe"):
            counts[e["recipe"]] = counts.get(e["recipe"], 0) + 1
    out: list[str] = []
    for e in experiments:
        base = e["recipe"] if e.get("recipe") and counts[e["recipe"]] == 1 else g.slug(e["name"])
        eid, n = base, 2
        while eid in out:
            eid, n = f"{base}-{n}", n + 1
        out.append(eid)
    return out


def build_plan(paper: Paper, s1: dict, s2: dict, *, offline: Offline, train_limit: int | None,
               epochs: int | None, feedback: str | None = None, addendum: str | None = None,
               broker=None) -> Plan:
    """``broker`` (sandbox.broker.Broker): fetches the paper's model and dataset, or says why not;
    None = the catalogue only (no ledger)."""
    capable = bool(s1.get("capable"))
    # a capable model's order is its own (the paper's method first); a weak plan runs in recipe order
    experiments_in = list(s2["experiments"]) if capable else \
        sorted(s2["experiments"], key=lambda e: RECIPE_ORDER.get(e.get("recipe") or "", 99))
    befores = [Reported.model_validate(b) for b in s1.get("before") or []]
    if not befores and (found := g.find_reported(paper, "before")) is not None:
        befores = [found]
    experiments = []
    for eid, e in zip(_ids(experiments_in), experiments_in):
        targets = [Reported.model_validate(t) for t in e["targets"]]
        recipe = e.get("recipe")
        # the row the paper's own labels tie to the recipe first; else the first target (a capable
        # model's experiment leads with its own first target: never a row it did not pick)
        after = (None if capable or not recipe else g.find_reported(paper, recipe)) or (targets[0] if targets else None)
        if after is not None:  # the recipe's own row leads: it names the experiment's metric
            targets = [after] + [t for t in targets if t != after]
        method = e.get("method") or (g.recipe_label(recipe) if recipe else "")
        if e.get("datasets"):
            method = (method + "; " if method else "") + "reported on " + ", ".join(e["datasets"][:4])
        metric = g.metric_of(targets) if targets else next(iter(e.get("metrics") or []), g.metric_of(targets))
        experiments.append(Experiment(
            id=eid, name=e["name"], method=method, recipe=recipe, metric=metric,
            reported_after=after, reported_before=next((b for b in befores if b.metric == metric), None),
            before_targets=[b for b in befores if b.metric == metric],
            claim=e.get("claim"), targets=targets,
            metrics=list(dict.fromkeys([metric] + list(e.get("metrics") or []))), evidence=e.get("evidence", "")))
    shared = s2["shared"]
    paper_model, paper_dataset = shared["base_model"]["value"], shared["dataset"]["value"]
    hyper = Hyper()
    deviations: list[Deviation] = []
    first = experiments_in[0]["hyperparameters"] if experiments_in else {}
    stated_epochs = g.first_int(g.stated(paper, "epochs")) or g.first_int((first.get("epochs") or {}).get("value"))
    # a capable model's value (stage 2 keeps it): the plan runs it, a deviation where the paper states it nowhere
    chosen = {name: g.first_int((first.get(name) or {}).get("value")) if (first.get(name) or {}).get("model")
              else None for name in ("epochs", "batch_size")}
    differs = {name: (first.get(name) or {}).get("paper_states") for name in ("epochs", "batch_size")}
    if chosen["epochs"]:
        if epochs is None and differs["epochs"]:
            deviations.append(Deviation(what="epochs", paper=differs["epochs"], ours=str(chosen["epochs"]),
                                        reason="the planning model's choice: the paper states it nowhere"))
        if epochs is None or not differs["epochs"]:  # the user's deviation names the paper's value
            stated_epochs = chosen["epochs"]
    if epochs is not None:  # the user's choice replaces the CPU cap: one deviation, the one that applies
        if str(epochs) != str(stated_epochs):
            # a paper that states no epochs: the plan's value was the model's, not the paper's
            said = "model (not stated" in str((first.get("epochs") or {}).get("from"))
            paper_side = (f"unspecified (the planning model's {stated_epochs})" if said and stated_epochs
                          else str(stated_epochs or "unspecified"))
            deviations.append(Deviation(what="epochs", paper=paper_side, ours=str(epochs),
                                        reason="set by the user for this run"))
        hyper.epochs = epochs
    elif stated_epochs:
        hyper.epochs = min(int(stated_epochs), offline.max_epochs)
        if stated_epochs > offline.max_epochs:
            deviations.append(Deviation(what="epochs", paper=str(stated_epochs), ours=str(hyper.epochs),
                                        reason="CPU-only compute budget"))
    stated_bs = g.first_int(g.stated(paper, "batch_size"))
    if chosen["batch_size"] and differs["batch_size"]:
        deviations.append(Deviation(what="batch size", paper=differs["batch_size"], ours=str(chosen["batch_size"]),
                                    reason="the planning model's choice: the paper states it nowhere"))
    stated_bs = chosen["batch_size"] or stated_bs
    if stated_bs and stated_bs != hyper.batch_size:
        hyper.batch_size = min(stated_bs, offline.max_batch_size)
        if stated_bs > offline.max_batch_size:
            deviations.append(Deviation(what="batch size", paper=str(stated_bs), ours=str(hyper.batch_size),
                                        reason="CPU memory"))
    # the paper's own model and data when the asset broker can have them, else the closest local ones;
    # a decoder task: a causal-LM recipe, or a decoder paper model with no encoder recipe planned
    decoder_task = any(e.recipe in CAUSAL_RECIPES for e in experiments) or (
        is_decoder(paper_model) and not any(e.recipe for e in experiments))
    model, data = (choose_model(broker, paper_model, offline, decoder_task=decoder_task),
                   choose_dataset(broker, paper_dataset))
    deviations += [c.deviation for c in (model, data) if c.deviation is not None]
    if train_limit:
        hyper.train_limit = train_limit
        deviations.append(Deviation(what="training data size", paper="full training set",
                                    ours=f"first {train_limit} training sentences", reason="scaled-down run"))
    notes = [f"planning stage {n}: {x}" for n, s in ((1, s1), (2, s2)) for x in s["notes"]]
    both_failed = "model" not in (s1["source"], s2["source"])
    if both_failed:
        problems = [f"stage {n}: {p}" for n, s in ((1, s1), (2, s2)) for p in s["problems"]]
        notes.insert(0, ("the model's plan answers were unusable (" + "; ".join(problems[-3:]) + ")"
                         if "replaced" not in (s1["source"], s2["source"]) else
                         "grounding replaced every value the model gave") + "; the plan was built from the structured paper alone")
    else:
        for n, s in ((1, s1), (2, s2)):
            if s["source"] == "fallback":
                notes.append(f"planning stage {n}: the model's answers were unusable "
                             f"({'; '.join(s['problems'][-2:])}); built from the structured paper")
            elif s["source"] == "replaced":
                notes.append(f"planning stage {n}: grounding replaced every value the model gave")
    unrecipe = [e.name for e in experiments if not e.recipe]
    if unrecipe:
        notes.append(f"no tested recipe fits {unrecipe}: the agent must write that code itself")
    if feedback:
        notes.append(f"re-planned after reviewer feedback: {feedback[:200]}")
    the_plan = Plan(task=shared["task"]["value"][:120], paper_model=paper_model, paper_dataset=paper_dataset,
                    model=model.name, dataset=data.name, dataset_config=data.config, causal_model=offline.decoder,
                    experiments=experiments, hyper=hyper, deviations=deviations, notes=notes,
                    source="fallback" if both_failed else "model", addendum=addendum,
                    fields={by: sum(f["by"] == by for s in (s1, s2) for f in s.get("fields", []))
                            for by in ("kept", "replaced", "added")})
    shared_rate: dict[str, str] = {}
    decoder = g.guess_decoder(paper) or paper_model  # an RLHF paper's policy, not its reward model's encoder
    if decoder_task and "smollm" not in decoder.lower():
        the_plan.deviations.append(Deviation(
            what="base model (causal LM)", paper=decoder, ours="SmolLM2-135M-Instruct (GGUF, de-quantised)",
            reason="offline machine: the only local decoder model"))
    rate_notes, rate_deviations = settings.choose(
        paper, experiments, {eid: e.get("model_rate") for eid, e in zip(_ids(experiments_in), experiments_in)},
        capable=capable, paper_model=paper_model, dataset=paper_dataset, defaults=dict(the_plan.hyper.learning_rate))
    the_plan.notes += rate_notes
    the_plan.deviations += rate_deviations
    for e in experiments:  # a scaffold trains at its experiment's rate
        if e.recipe and (rate := e.settings[settings.RATE].value) is not None:
            if e.recipe in shared_rate and shared_rate[e.recipe] != rate:
                the_plan.notes.append(f"{e.id}: the {e.recipe} scaffold runs at {shared_rate[e.recipe]}, the rate "
                                      f"of the experiment before it on that recipe, not {rate}")
                e.settings[settings.RATE] = e.settings[settings.RATE].model_copy(update={
                    "value": shared_rate[e.recipe], "source": "the rate of the experiment before it on its recipe"})
                continue
            shared_rate[e.recipe] = rate
            the_plan.hyper.learning_rate[e.recipe] = float(rate)
    the_plan.deviations += settings.apply_others(paper, the_plan, paper_model=paper_model, dataset=paper_dataset)
    for r in {e.recipe for e in experiments if e.recipe}:  # what a recipe must substitute here (QLoRA without CUDA)
        for d in get_recipe(r).deviations(the_plan, {"cuda": offline.cuda}):
            if d not in the_plan.deviations:
                the_plan.deviations.append(d)
    # the paper's method on a recipe that is not that method: first, so every status reason cites it
    approximated = [d for d in map(approximation, experiments) if d is not None]
    the_plan.deviations, checked = check_deviations(approximated + the_plan.deviations, decoder_task=decoder_task)
    the_plan.notes += checked
    the_plan.claims = plan_claims(s1.get("claims") or [], experiments, the_plan)
    assert all(e.recipe is None or e.recipe in registry() for e in experiments)
    return the_plan


def plan_claims(given: list[dict], experiments: list[Experiment], the_plan: Plan) -> list[Claim]:
    """The model's claims with experiment ids for its names (stage 1 checked them); none given: the
    claims the plan's own numbers make (graders.claims.derive_claims: each experiment's claim, and
    the paper's comparison of every two experiments it scores in one column)."""
    by_name = {e.name: e for e in experiments}
    out = []
    for c in given:
        exps = [by_name[n] for n in c["experiments"] if n in by_name]
        if len(exps) != len(c["experiments"]):
            continue
        metric = c.get("metric") or exps[0].metric
        out.append(Claim(id=f"C{len(out) + 1}", text=c["text"], kind=c["kind"], experiments=[e.id for e in exps],
                         relation=c.get("relation"), margin=c.get("margin") or 0.0, metric=metric,
                         cells=c.get("cells") or [], source="model"))
    if out:
        return out
    return [Claim.model_validate(c) for c in derive_claims(json.loads(the_plan.model_dump_json()))]
