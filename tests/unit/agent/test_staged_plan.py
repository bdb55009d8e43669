"""Staged planning with a scripted model: stage files, grounding, fallbacks, free-form experiments
whose targets are always rows of paper.results, and a plan that hides no experiment."""
from __future__ import annotations

import json
from pathlib import Path

from agent.config import RunConfig
from agent.context import Offline, RunContext
from agent.llm import ScriptedChatModel
from agent.planning import grounding as g
from agent.planning.build import build_plan
from agent.planning.stages import STAGE_FILES, stage_claims, stage_settings
from agent.recipes import registry
from papers import load_paper
from tests.conftest import need_shared

from .conftest import CLAIMS_ANSWER, DEMO_PAPER, SETTINGS_ANSWER
from papers.demo import table1

TABLE1 = table1()  # the demo paper's Table 1, as its PDF prints it

RECIPES = sorted(registry())


def _plan(tmp_path, script: list, paper_path: Path = DEMO_PAPER, **kw):
    """The plan node's work, stage by stage, with a scripted model (no graph, no sandbox)."""
    cfg = RunConfig(run_id="s1", runs_dir=tmp_path / "runs", paper_path=paper_path, **kw)
    model = ScriptedChatModel(script, name="scripted-agent")
    ctx = RunContext(config=cfg, model=model, judge_model=model, sandbox_factory=None)
    paper = load_paper(paper_path)
    cands = g.candidate_results(paper)
    s1, usage = stage_claims(ctx, {}, paper, cands, RECIPES, None)
    s2, usage = stage_settings(ctx, usage, paper, cands, s1["experiments"], None)
    plan = build_plan(paper, s1, s2, offline=Offline(), train_limit=cfg.train_limit, epochs=cfg.epochs)
    stages = {n: json.loads((cfg.run_dir / "plan" / f).read_text()) for n, f in STAGE_FILES.items()}
    return plan, stages, model, usage, ctx, paper, cands


def _paper_results(path: Path = DEMO_PAPER) -> set[tuple]:
    paper = load_paper(path)
    return {(r.table, r.row, r.column, r.value, r.text, r.page) for r in paper.results}


def _key(t: dict) -> tuple:
    return (t["table"], t["row"], t["column"], t["value"], t["text"], t["page"])


def test_stages_are_saved_and_grounded(tmp_path):
    plan, stages, model, usage, *_ = _plan(tmp_path, [CLAIMS_ANSWER, SETTINGS_ANSWER])
    assert len(model.requests) == 2
    s1, s2 = stages[1], stages[2]
    assert (s1["source"], s2["source"]) == ("model", "model")
    # stage 1: the model's experiments, free-form, with rows picked by id; full added (the paper reports it)
    assert [e["name"] for e in s1["experiments"]] == ["Classifier head only", "LoRA", "Full fine-tuning"]
    assert s1["experiments"][0]["targets"][0]["row"] == "Classifier head only"
    assert s1["experiments"][1]["method"] == "LoRA on the query and value projections"
    assert any("added 'Full fine-tuning'" in n for n in s1["notes"])
    assert [b["row"] for b in s1["before"]] == ["Before fine-tuning"]
    # the schema lets the model answer only with result ids and the registry's recipes (or none)
    schema1 = model.requests[0]["schema"]["properties"]["experiments"]["items"]["properties"]
    assert schema1["results"]["items"]["enum"][-1] == "none" and schema1["recipe"]["enum"] == RECIPES + ["none"]
    schema2 = model.requests[1]["schema"]["properties"]["experiments"]["items"]["properties"]
    assert schema2["experiment"]["enum"] == ["E1", "E2", "E3"]
    assert "Step 2 of 2" in model.requests[1]["messages"][1]["content"]
    # stage 2: stated hyper-parameters come from the paper with their page
    head = s2["experiments"][0]
    assert head["hyperparameters"]["epochs"]["from"].startswith("paper p.")
    assert s2["experiments"][2]["settings_from"] == "paper"  # the model gave none for 'full'
    # the plan: ids by recipe, cheapest first, each with the paper's number and provenance
    assert [(e.id, e.recipe) for e in plan.experiments] == [("head", "head"), ("lora", "lora"), ("full", "full")]
    assert [e.reported_after.value for e in plan.experiments] == [TABLE1[k] for k in ("head", "lora", "full")]
    assert all(e.reported_before.value == TABLE1["before"] for e in plan.experiments)
    assert plan.source == "model" and plan.experiments[0].claim
    # each experiment's learning rate is the one the paper states for its method, and its scaffold runs it
    rates = {e.id: (e.settings["learning_rate"].value, e.settings["learning_rate"].source) for e in plan.experiments}
    assert rates == {"head": ("0.002", "the paper's"), "lora": ("0.001", "the paper's"), "full": ("5e-05", "the paper's")}
    assert plan.hyper.learning_rate["head"] == 0.002 and not any("learning rate" in d.what for d in plan.deviations)
    assert s1["usage"]["calls"] == s2["usage"]["calls"] == 1 and usage["reasks"] == 0


def test_targets_always_come_from_paper_results(tmp_path):
    """Whatever the model writes — numbers in its text, unknown ids — targets are rows of paper.results."""
    claims = {"experiments": [{"name": "head only", "method": "m", "recipe": "head", "claim": "reaches 99.9% accuracy",
                               "results": ["R99", "R4"]}]}
    settings = {"task": "t", "base_model": "all-MiniLM-L6-v2", "dataset": "movie review snippets", "experiments": [
        {"experiment": "E1", "epochs": 1, "batch_size": 8, "learning_rate": 0.1, "metrics": ["accuracy"],
         "targets": ["R99", 99.9, {"value": 99.9}, "R4"]}]}
    plan, stages, *_ = _plan(tmp_path, [claims, settings])
    results = _paper_results()
    for e in stages[2]["experiments"]:
        for t in e["targets"]:
            assert _key(t) in results
    head = next(e for e in plan.experiments if e.recipe == "head")
    # R4 (the only valid id) is the full fine-tuning row: not the head's target; its own row is
    assert [t.row for t in head.targets] == ["Classifier head only"]
    assert any("ignored result R4" in n for n in stages[1]["notes"])
    for e in plan.experiments:
        for t in e.targets + [e.reported_after, e.reported_before]:
            if t:
                assert _key(t.model_dump()) in results
        assert "99.9" not in e.model_dump_json()  # the model's invented figure is masked in its claim text
    assert head.claim == "reaches [?]% accuracy"
    assert head.reported_after.value == TABLE1["head"]


def test_garbage_answers_fall_back_to_the_paper(tmp_path):
    garbage = ["not json at all", {"experiments": "many"}, {"nope": 1}]
    plan, stages, model, usage, *_ = _plan(tmp_path, garbage + ["]]", [], {"task": ""}])
    assert len(model.requests) == 6  # 1 + 2 re-asks per stage (max_reasks=2), then the fallback
    assert usage["reasks"] == 4
    s1, s2 = stages[1], stages[2]
    assert s1["source"] == s2["source"] == "fallback"
    assert s1["model_answer"] is None and len(s1["problems"]) == 3 and len(s2["problems"]) == 3
    assert "not a JSON object" in s1["problems"][0]
    # the fallback is the paper's own result rows: every method it reports, with its number
    assert [e.id for e in plan.experiments] == ["head", "lora", "full"]
    assert all(e.targets and e.evidence.startswith("the paper reports results") for e in plan.experiments)
    results = _paper_results()
    assert all(_key(t) in results for e in s2["experiments"] for t in e["targets"])
    assert plan.source == "fallback" and any("unusable" in n for n in plan.notes)
    re_asks = [r["messages"][-1]["content"] for r in model.requests[1:3]]
    assert all("unusable" in m for m in re_asks)  # the model is told what was wrong


def test_invented_model_and_dataset_are_replaced_by_the_papers(tmp_path):
    """As SmolLM2-135M answered on a real paper: the prompt's marker as the task, garbage claims."""
    settings = dict(SETTINGS_ANSWER, base_model="GPT-7 ultra", dataset="the secret corpus", task="PAPER-52e3f44ccb1")
    claims = {"experiments": [{"name": "head", "method": "2018_3.549763", "recipe": "head", "claim": "2018_3.549763",
                               "results": ["none"]}]}
    plan, stages, *_ = _plan(tmp_path, [claims, settings])
    shared = stages[2]["shared"]
    assert shared["task"] == {"value": "text classification", "from": "default"}
    assert f"the paper reports {TABLE1['head']:g}" in stages[1]["experiments"][0]["claim"]  # digit soup replaced
    assert shared["base_model"]["from"].startswith("paper") and "MiniLM" in shared["base_model"]["value"]
    # The invented names may appear only in the notes that say they were replaced, nowhere the plan is used.
    used = {k: v for k, v in plan.model_dump().items() if k != "notes"}
    assert "GPT-7" not in json.dumps(used) and "secret corpus" not in json.dumps(used)
    assert any("'GPT-7 ultra' from the model is not a base model the paper names" in n for n in plan.notes)


def test_a_rerun_of_the_plan_stages_reuses_saved_answers(tmp_path):
    """A crash inside planning: the stage files answer the same requests, usage is counted once."""
    plan, stages, _, _, ctx, paper, cands = _plan(tmp_path, [CLAIMS_ANSWER, SETTINGS_ANSWER])
    ctx.model = ScriptedChatModel([], name="scripted-agent")  # raises if asked
    rec, usage = stage_claims(ctx, {}, paper, cands, RECIPES, None)
    assert rec["experiments"] == stages[1]["experiments"] and usage["calls"] == 1


def test_the_adapters_paper_plans_its_own_method_not_only_a_recipe(tmp_path):
    """The paper's method (bottleneck adapters) has no recipe: it is still in the plan, with its
    reported numbers, and the plan says the agent must write that code."""
    pdf = need_shared("papers/real/adapters-houlsby-1902.00751.pdf")
    plan, *_ = _plan(tmp_path, [{"x": 1}] * 6, paper_path=pdf)  # an unusable model: the paper decides
    names = [e.name for e in plan.experiments]
    adapters = [e for e in plan.experiments if "Adapter" in e.name]
    assert adapters, names
    assert all(e.recipe is None and e.targets for e in adapters)
    assert any(t.table == "Table 1" for e in adapters for t in e.targets)
    assert any("the agent must write that code itself" in n for n in plan.notes)
    results = _paper_results(pdf)
    assert all(_key(t.model_dump()) in results for e in plan.experiments for t in e.targets)


def test_howto_bert_fallback_names_the_papers_model_and_data(tmp_path):
    """Deviations on a real paper stay meaningful when the model is unusable (BERT-base, IMDb...)."""
    pdf = need_shared("papers/real/howto-finetune-bert-1905.05583.pdf")
    paper = load_paper(pdf)
    assert g.guess_model(paper).lower().replace("-", "").replace(" ", "") in ("bertbase", "bertlarge")
    assert "IMDb" in g.guess_dataset(paper)
    assert len(g.candidate_results(paper)) <= 12
    plan, *_ = _plan(tmp_path / "a", [{"x": 1}] * 6, paper_path=pdf, train_limit=300, epochs=1)
    whats = {d.what: d for d in plan.deviations}
    assert whats["base model"].paper.lower().startswith("bert") and "IMDb" in whats["dataset"].paper
    # one epochs deviation, the one that applies (the user's 1, not also the CPU cap's 3)
    assert [(d.paper, d.ours) for d in plan.deviations if d.what == "epochs"] == [("4", "1")]
    capped, *_ = _plan(tmp_path / "b", [{"x": 1}] * 6, paper_path=pdf, train_limit=300)
    assert [(d.paper, d.ours) for d in capped.deviations if d.what == "epochs"] == [("4", "3")]


def test_demo_paper_settings_come_from_the_paper_not_the_model(tmp_path):
    """The paper states batch size 32 and 1 epoch: a model proposing 3 epochs of batch 8 is overruled."""
    settings = dict(SETTINGS_ANSWER, experiments=[dict(e, epochs=3, batch_size=8) for e in SETTINGS_ANSWER["experiments"]])
    plan, *_ = _plan(tmp_path, [CLAIMS_ANSWER, settings])
    assert (plan.hyper.epochs, plan.hyper.batch_size) == (1, 32)
    assert not [d for d in plan.deviations if d.what in ("epochs", "batch size", "base model")]


def test_an_addendum_beside_the_paper_reaches_the_plan(tmp_path):
    """PaperBench's layout: addendum.md next to paper.pdf holds the authors' clarifications."""
    from agent.nodes.plan import addendum_for

    (tmp_path / "paper.pdf").write_bytes(DEMO_PAPER.read_bytes())
    assert addendum_for(tmp_path / "paper.pdf") is None
    (tmp_path / "addendum.md").write_text("Use seed 13; the LoRA rank is 8.")
    assert addendum_for(tmp_path / "paper.pdf") == "Use seed 13; the LoRA rank is 8."


def test_the_before_training_row_is_a_baseline_never_a_method_target(tmp_path):
    """SmolLM2 on the demo paper picked R1 (before fine-tuning) as a target of every method."""
    claims = {"experiments": [dict(e, results=["R1", e["results"][0]]) for e in CLAIMS_ANSWER["experiments"]]}
    settings = dict(SETTINGS_ANSWER, experiments=[dict(e, targets=["R1"] + e["targets"])
                                                  for e in SETTINGS_ANSWER["experiments"]])
    plan, stages, *_ = _plan(tmp_path, [claims, settings])
    for e in plan.experiments:
        assert all(t.row != "Before fine-tuning" for t in e.targets), (e.id, e.targets)
        assert [b.row for b in e.before_targets] == ["Before fine-tuning"]
    assert any("kept as the baseline" in n for n in stages[2]["notes"])


def test_a_weak_models_right_recipe_with_a_wrong_name_is_kept(tmp_path):
    """SmolLM2 on the demo paper: the prompt's marker as every name, but the right recipes."""
    claims = {"experiments": [{"name": "PAPER-73f54e6d3529", "method": "Method", "recipe": r, "claim": "",
                               "results": ["none"]} for r in ("full", "head")]}
    plan, stages, *_ = _plan(tmp_path, [claims, SETTINGS_ANSWER])
    assert stages[1]["source"] == "model" and stages[1]["problems"] == []
    assert [e["name"] for e in stages[1]["experiments"]][:2] == ["Full fine-tuning",
                                                                 "Classifier head only (transfer learning)"]
    assert sum("is not words: named after its recipe" in n for n in stages[1]["notes"]) == 2
    assert "PAPER-" not in json.dumps([e.model_dump() for e in plan.experiments])  # only the notes say it


def test_an_invented_experiment_name_is_not_kept(tmp_path):
    """SmolLM2 named an experiment 'caliburt' with recipe full: a word the paper never uses."""
    claims = {"experiments": CLAIMS_ANSWER["experiments"] + [
        {"name": "caliburt", "method": "x", "recipe": "full", "claim": "", "results": ["none"]},
        {"name": "another full", "method": "x", "recipe": "full", "claim": "", "results": ["none"]}]}
    plan, stages, *_ = _plan(tmp_path, [claims, SETTINGS_ANSWER])
    assert [e.id for e in plan.experiments] == ["head", "lora", "full"]
    assert "caliburt" not in json.dumps([e.model_dump() for e in plan.experiments])
    assert any("shares no word with the paper" in n for n in stages[1]["notes"])


def test_the_rlhf_paper_plans_one_rlhf_experiment_on_its_own_decoder(tmp_path):
    """The reward model's row ("MiniLM-L6, scalar head", pairwise accuracy) is a stage of the RLHF
    run, not the classifier-head recipe; and the paper's policy is SmolLM2, so the causal-LM
    recipes substitute nothing."""
    pdf = Path(__file__).resolve().parents[3] / "papers" / "rlhf-grpo-smollm2-reviews" / "paper.pdf"
    plan, *_ = _plan(tmp_path, [{"x": 1}] * 6, paper_path=pdf)
    assert [(e.id, e.recipe) for e in plan.experiments] == [("rlhf", "rlhf")]
    rlhf = plan.experiments[0]
    assert rlhf.reported_after.value == 0.311 and rlhf.metric == "mean reward"
    assert {(t.column, t.value) for t in rlhf.targets} == {("Mean reward", 0.311), ("Pairwise accuracy (%)", 96.9)}
    assert rlhf.reported_before.value == 0.013 and rlhf.metrics[0] == "mean reward"
    assert not [d for d in plan.deviations if d.what == "base model (causal LM)"], plan.deviations


def test_each_field_says_what_the_model_gave_and_what_grounding_kept(tmp_path):
    """A stage is the model's only where the plan keeps a value it gave: field by field, kept,
    replaced or added, never 'model' because some JSON parsed."""
    settings = dict(SETTINGS_ANSWER, base_model="GPT-7 ultra")  # invented: replaced by the paper's
    plan, stages, *_ = _plan(tmp_path, [CLAIMS_ANSWER, settings])
    by_field = {f["field"]: f for f in stages[2]["fields"]}
    assert by_field["base_model"]["by"] == "replaced" and by_field["base_model"]["model"] == "GPT-7 ultra"
    assert "MiniLM" in by_field["base_model"]["kept"]
    assert by_field["dataset"] == {"field": "dataset", "model": "movie review snippets",
                                   "kept": "movie review snippets", "by": "kept"}
    assert by_field["E1 targets"]["by"] == "kept" and by_field["E1 targets"]["kept"] == ["R2"]
    s1 = {f["field"]: f for f in stages[1]["fields"]}
    assert s1["experiment 'LoRA' recipe"]["by"] == "kept"
    assert {"field": "experiment", "model": None, "kept": "Full fine-tuning", "by": "added"} in stages[1]["fields"]
    assert stages[2]["source"] == "model" and plan.fields["replaced"] >= 1 and plan.fields["kept"] >= 5


def test_an_answer_grounding_replaced_entirely_is_not_the_models_plan(tmp_path):
    """Parsable JSON whose every value is replaced: the stage says 'replaced', the plan 'fallback'."""
    claims = {"experiments": [{"name": "Quantum annealing", "method": "x", "recipe": "none", "claim": "",
                               "results": ["none"]}]}
    settings = {"task": "PAPER-1234", "base_model": "GPT-7 ultra", "dataset": "the secret corpus",
                "experiments": [{"experiment": "E1", "targets": ["none"]}]}
    plan, stages, *_ = _plan(tmp_path, [claims, settings])
    assert stages[1]["source"] == stages[2]["source"] == "replaced"
    assert all(f["by"] != "kept" for s in stages.values() for f in s["fields"])
    assert plan.source == "fallback" and plan.fields["kept"] == 0
    assert any("grounding replaced every value the model gave" in n for n in plan.notes)
