"""Staged planning with a scripted model: stage files, grounding, fallbacks, targets from paper.results."""
from __future__ import annotations

import json

from agent.config import RunConfig
from agent.llm import ScriptedChatModel
from agent.nodes.plan import STAGE_FILES, candidate_results, guess_dataset, guess_model
from agent.runner import execute_run
from papers import load_paper
from sandbox.fake import FakeSandbox

from .conftest import CLAIMS_ANSWER, DEMO_PAPER, SETTINGS_ANSWER


def _cfg(tmp_path, **kw) -> RunConfig:
    return RunConfig(run_id="s1", runs_dir=tmp_path / "runs", paper_path=DEMO_PAPER, sandbox_backend="fake",
                     train_limit=32, epochs=1, **kw)


def _verdicts(messages, schema):
    keys = schema["properties"]["verdicts"]["items"]["properties"]["key"]["enum"]
    return {"verdicts": [{"key": k, "explanation": "ok", "score": 1} for k in keys]}


def _run(tmp_path, agent_script: list):
    cfg = _cfg(tmp_path)
    agent = ScriptedChatModel(agent_script, name="scripted-agent")
    judge = ScriptedChatModel([_verdicts] * 40, name="scripted-judge")
    state = execute_run(cfg, model=agent, judge_model=judge, factory=lambda role: FakeSandbox(None, run_id="s1"))
    stages = {n: json.loads((cfg.run_dir / "plan" / f).read_text()) for n, f in STAGE_FILES.items()}
    return cfg, state, agent, stages


def _paper_results() -> set[tuple]:
    paper = load_paper(DEMO_PAPER)
    return {(r.table, r.row, r.column, r.value, r.text, r.page) for r in paper.results}


def _key(t: dict) -> tuple:
    return (t["table"], t["row"], t["column"], t["value"], t["text"], t["page"])


def test_stages_are_saved_and_grounded(tmp_path):
    cfg, state, agent, stages = _run(tmp_path, [CLAIMS_ANSWER, SETTINGS_ANSWER])
    assert state["status"] == "done"
    assert len(agent.requests) == 2  # two model-asked stages; stage 3 comes from the recipes
    s1, s2, s3 = stages[1], stages[2], stages[3]
    assert (s1["source"], s2["source"], s3["source"]) == ("model", "model", "recipes")
    # stage 1: the model's claims, each with its supporting row; full added (the paper reports it)
    assert [c["method"] for c in s1["experiments"]] == ["head", "lora", "full"]
    assert s1["experiments"][0]["support"]["row"] == "Classifier head only"
    assert s1["experiments"][0]["support_from"] == "model-picked result"
    assert any("added 'full'" in n for n in s1["notes"])
    # the schema only lets the model answer with result ids and known methods
    schema1 = agent.requests[0]["schema"]["properties"]["experiments"]["items"]["properties"]
    assert schema1["result"]["enum"][-1] == "none" and schema1["method"]["enum"]
    assert schema1["claim"]["maxLength"] <= 200
    schema2 = agent.requests[1]["schema"]["properties"]["experiments"]["items"]["properties"]
    assert schema2["method"]["enum"] == ["head", "lora", "full"]
    assert "Step 2 of 2" in agent.requests[1]["messages"][1]["content"]
    # stage 2: per experiment settings; stated hyper-parameters come from the paper with their page
    head = s2["experiments"][0]
    assert head["method"] == "head" and head["base_model"] == "all-MiniLM-L6-v2"
    assert head["hyperparameters"]["learning_rate"]["from"].startswith("paper p.")
    assert head["targets"][0]["row"] == "Classifier head only" and head["targets"][0]["value"] == 70.9
    assert s2["experiments"][2]["settings_from"] == "paper"  # the model gave none for 'full'
    # stage 3: which recipe renders which file, commands in reproduce.sh order
    assert [f["path"] for f in s3["files"]] == ["train.py", "reproduce.sh", "README.md"]
    reproduce = (cfg.run_dir / "submission" / "reproduce.sh").read_text()
    assert [c for c in s3["commands"]] == [ln for ln in reproduce.splitlines() if ln.startswith("python ")]
    # the final plan carries claims and targets; plan.json names each stage's source
    plan = json.loads((cfg.run_dir / "plan.json").read_text())
    assert plan["stages"] == {"stage-1-claims.json": "model", "stage-2-experiments.json": "model",
                              "stage-3-implementation.json": "recipes"}
    assert plan["plan"]["source"] == "model" and plan["plan"]["experiments"][0]["claim"]
    # each stage's usage adds up to the run's
    assert s1["usage"]["calls"] == s2["usage"]["calls"] == 1 and state["usage"]["reasks"] == 0


def test_targets_always_come_from_paper_results(tmp_path):
    """Whatever the model writes — numbers in its text, unknown ids — targets are rows of paper.results."""
    claims = {"experiments": [{"name": "head", "method": "head", "claim": "reaches 99.9% accuracy",
                               "result": "R99"}]}
    settings = {"task": "t", "base_model": "all-MiniLM-L6-v2", "dataset": "movie review snippets", "experiments": [
        {"method": "head", "epochs": 1, "batch_size": 8, "learning_rate": 0.1, "metrics": ["accuracy"],
         "targets": ["R99", 99.9, {"value": 99.9}, "R4"]}]}
    cfg, state, _, stages = _run(tmp_path, [claims, settings])
    results = _paper_results()
    for e in stages[2]["experiments"]:
        for t in e["targets"]:
            assert _key(t) in results
    head = stages[2]["experiments"][0]
    # R4 (the only valid id) is the full fine-tuning row: not the head's target; its own row is
    assert [t["row"] for t in head["targets"]] == ["Classifier head only"]
    assert any("ignored target(s) ['R4']" in n for n in stages[2]["notes"])
    plan = state["plan"]
    for e in plan["experiments"]:
        for t in e["targets"] + [e["reported_after"]] + [e["reported_before"]]:
            if t:
                assert _key(t) in results
        assert "99.9" not in json.dumps(e)  # the model's invented figure is masked in its claim text
    assert plan["experiments"][0]["claim"] == "reaches [?]% accuracy"
    # the head's reported number is the paper's row named for the method, not the model's pick
    assert plan["experiments"][0]["reported_after"]["value"] == 70.9


def test_garbage_answers_fall_back_to_the_paper(tmp_path):
    garbage = ["not json at all", {"experiments": "many"}, {"nope": 1}]
    cfg, state, agent, stages = _run(tmp_path, garbage + ["]]", [], {"task": ""}])
    assert state["status"] == "done"
    assert len(agent.requests) == 6  # 1 + 2 re-asks per stage (max_reasks=2), then the fallback
    assert state["usage"]["reasks"] == 4
    s1, s2 = stages[1], stages[2]
    assert s1["source"] == s2["source"] == "fallback"
    assert s1["model_answer"] is None and len(s1["problems"]) == 3 and len(s2["problems"]) == 3
    assert "not a JSON object" in s1["problems"][0]
    # the fallback still says what the paper claims, with the rows that support it
    assert [c["method"] for c in s1["experiments"]] == ["full", "head", "lora"]
    assert all(c["support"] and c["support_from"] for c in s1["experiments"])
    results = _paper_results()
    assert all(_key(t) in results for e in s2["experiments"] for t in e["targets"])
    plan = json.loads((cfg.run_dir / "plan.json").read_text())
    assert plan["plan"]["source"] == "fallback" and plan["model_answer"] is None
    assert plan["stages"]["stage-1-claims.json"] == "fallback"
    assert any("unusable" in n for n in plan["plan"]["notes"])
    assert [e["method"] for e in plan["plan"]["experiments"]] == ["head", "lora", "full"]
    re_asks = [r["messages"][-1]["content"] for r in agent.requests[1:3]]
    assert all("unusable" in m for m in re_asks)  # the model is told what was wrong


def test_one_stage_falls_back_the_other_stays(tmp_path):
    """Ungrounded methods are re-asked, then stage 1 falls back; stage 2's good answer is kept."""
    only_dpo = {"experiments": [{"name": "x", "method": "dpo", "claim": "c", "result": "none"}]}
    cfg, state, agent, stages = _run(tmp_path, [only_dpo] * 3 + [SETTINGS_ANSWER])
    assert stages[1]["source"] == "fallback" and "mentions none of the methods" in stages[1]["problems"][0]
    assert stages[2]["source"] == "model"
    assert state["plan"]["source"] == "model"
    assert any("planning stage 1" in n and "unusable" in n for n in state["plan"]["notes"])


def test_invented_model_and_dataset_are_replaced_by_the_papers(tmp_path):
    """As SmolLM2-135M answered on a real paper: the prompt's marker as the task, garbage claims."""
    settings = dict(SETTINGS_ANSWER, base_model="GPT-7 ultra", dataset="the secret corpus",
                    task="PAPER-52e3f44ccb1")
    claims = {"experiments": [{"name": "head", "method": "head", "claim": "2018_3.549763", "result": "none"}]}
    cfg, state, _, stages = _run(tmp_path, [claims, settings])
    shared = stages[2]["shared"]
    assert shared["task"] == {"value": "text classification", "from": "default"}
    assert "the paper reports 70.9" in stages[1]["experiments"][0]["claim"]  # digit soup replaced
    assert shared["base_model"]["from"].startswith("paper") and "MiniLM" in shared["base_model"]["value"]
    # The invented names may appear only in the notes that say they were replaced, nowhere the plan is used.
    used = {k: v for k, v in state["plan"].items() if k != "notes"}
    assert "GPT-7" not in json.dumps(used) and "secret corpus" not in json.dumps(used)
    assert any("'GPT-7 ultra' from the model is not a base model the paper names" in n for n in state["plan"]["notes"])
    assert any("is not a base model the paper names" in n for n in stages[2]["notes"])


def test_a_rerun_of_the_plan_node_reuses_saved_stages(tmp_path):
    """A crash inside planning: the stage files answer the same requests, usage is counted once."""
    from agent.nodes.plan import stage_claims

    cfg, state, agent, stages = _run(tmp_path, [CLAIMS_ANSWER, SETTINGS_ANSWER])

    class Ctx:
        config = cfg
        model = ScriptedChatModel([], name="scripted-agent")  # raises if asked

    paper = load_paper(DEMO_PAPER)
    rec, usage = stage_claims(Ctx, {"usage": None}, paper, candidate_results(paper), None)
    assert rec["experiments"] == stages[1]["experiments"] and usage["calls"] == 1


def test_howto_bert_fallback_names_the_papers_model_and_data():
    """Deviations on a real paper stay meaningful when the model is unusable (BERT-base, IMDb...)."""
    from pathlib import Path

    pdf = Path(__file__).resolve().parents[4] / "shared" / "papers" / "real" / "howto-finetune-bert-1905.05583.pdf"
    if not pdf.exists():
        import pytest
        pytest.skip("the real papers are not here")
    from agent.nodes.plan import build_plan
    paper = load_paper(pdf)
    assert guess_model(paper).lower().replace("-", "").replace(" ", "") in ("bertbase", "bertlarge")
    assert "IMDb" in guess_dataset(paper)
    assert len(candidate_results(paper)) <= 12
    p = build_plan(paper, None, train_limit=300, epochs=1, problems=["x"])
    whats = {d.what: d for d in p.deviations}
    assert whats["base model"].paper.lower().startswith("bert") and "IMDb" in whats["dataset"].paper
    assert whats["epochs"].paper == "4"
    # one epochs deviation, the one that applies (the user's 1, not also the CPU cap's 3)
    assert [(d.paper, d.ours) for d in p.deviations if d.what == "epochs"] == [("4", "1")]
    capped = build_plan(paper, None, train_limit=300, epochs=None, problems=["x"])
    assert [(d.paper, d.ours) for d in capped.deviations if d.what == "epochs"] == [("4", "3")]


def test_demo_paper_settings_come_from_the_paper_not_the_model():
    """The paper states batch size 32 and 1 epoch: a model proposing 3 epochs of batch 8 is overruled."""
    from pathlib import Path

    from agent.nodes.plan import build_plan
    demo = Path(__file__).resolve().parents[3] / "papers" / "demo-minilm-sentiment" / "paper.pdf"
    paper = load_paper(demo)
    plan = build_plan(paper, {"epochs": 3, "batch_size": 8, "methods": ["lora"]}, train_limit=None, epochs=None,
                      problems=[])
    assert (plan.hyper.epochs, plan.hyper.batch_size) == (1, 32)
    assert not [d for d in plan.deviations if d.what in ("epochs", "batch size", "base model")]
