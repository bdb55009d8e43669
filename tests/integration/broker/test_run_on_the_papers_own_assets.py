"""A whole run (scripted models, real Docker sandboxes) of a paper that names its model and
dataset by Hub ids: the broker fetches them from the fake Hub, the plan keeps them (no model or
dataset deviation), the scaffolded code loads them by those names in sandboxes with no network,
trains, and the report lists them as the paper's own assets with revision, hash and licence."""
from __future__ import annotations

import json

import pytest

from agent.config import RunConfig
from agent.eval.doubles import CRITERION, coding_turn
from agent.llm import ScriptedChatModel
from agent.runner import execute_run
from papers.demo import render_pdf

pytestmark = pytest.mark.docker

PAPER = """<h1>Tiny BERT on Tiny SST</h1>
<h2>Abstract</h2>
<p>We fine-tune the classifier head of org/tiny-bert, a two-layer BERT encoder, on org/tiny-sst2, a small
binary sentiment dataset, and report accuracy on its test split.</p>
<h2>1 Setup</h2>
<p>Model: org/tiny-bert from the Hugging Face Hub. Data: org/tiny-sst2 (sentence, label). We train one epoch
with batch size 16 and learning rate 0.002, seed 42, and train only the classification head.</p>
<h2>2 Results</h2>
<p class="caption">Table 1: Accuracy (%) on the test split of org/tiny-sst2.</p>
<table><tr><th>Method</th><th>Accuracy</th></tr>
<tr><td>Before fine-tuning</td><td>50.0</td></tr>
<tr><td>Classifier head only</td><td>62.5</td></tr></table>
"""


def _leaf(i: int, req: str, cat: str) -> dict:
    return {"id": f"leaf-{i}", "requirements": req, "weight": 1, "sub_tasks": [], "task_category": cat,
            "finegrained_task_category": None}


RUBRIC = {"id": "root", "requirements": "Tiny BERT on Tiny SST has been replicated.", "weight": 1, "sub_tasks": [
    _leaf(1, "Code loads org/tiny-bert and org/tiny-sst2.", "Code Development"),
    _leaf(2, "reproduce.sh trains the classifier head.", "Code Execution"),
    _leaf(3, "The accuracy of the head is reported.", "Result Analysis")]}

CLAIMS = {"experiments": [{"name": "Classifier head only", "method": "train only the classifier head",
                           "recipe": "head", "claim": "the head reaches 62.5%", "results": ["R2"]}]}
SETTINGS = {"task": "binary sentiment classification", "base_model": "org/tiny-bert", "dataset": "org/tiny-sst2",
            "experiments": [{"experiment": "E1", "epochs": 1, "batch_size": 16, "learning_rate": 0.002,
                             "metrics": ["accuracy"], "targets": ["R2"]}]}


def _answer(messages, schema):
    props = (schema or {}).get("properties", {})
    if "verdicts" in props:
        text = messages[-1]["content"] if len(messages) < 3 else messages[2]["content"]
        return {"verdicts": [{"key": k, "explanation": "scripted", "score": 1} for k, _ in CRITERION.findall(text)]}
    if "base_model" in props:
        return SETTINGS
    if "experiments" in props:
        return CLAIMS
    return coding_turn(messages, recipe="head")


def test_a_run_replicates_on_the_papers_own_hub_assets(fake_hub, tmp_path, docker_engine, monkeypatch):
    paper_dir = tmp_path / "paper"
    paper_dir.mkdir()
    (paper_dir / "paper.html.j2").write_text(PAPER)
    render_pdf({"title": "Tiny BERT on Tiny SST"}, paper_dir / "paper.pdf", paper_dir=paper_dir)
    (paper_dir / "rubric.json").write_text(json.dumps(RUBRIC))
    monkeypatch.setenv("REPRO_ASSET_CACHE", str(tmp_path / "cache"))
    cfg = RunConfig(run_id="hub-assets-run", runs_dir=tmp_path / "runs", paper_path=paper_dir / "paper.pdf",
                    rubric_path=paper_dir / "rubric.json", sandbox_backend="docker", assets="online", guide="off")
    agent = ScriptedChatModel([_answer] * 40, name="scripted-agent")
    judge = ScriptedChatModel([_answer] * 40, name="scripted-judge")
    state = execute_run(cfg, model=agent, judge_model=judge)
    assert state["status"] == "done"
    run = cfg.run_dir
    plan = json.loads((run / "plan.json").read_text())["plan"]
    assert (plan["model"], plan["dataset"]) == ("org/tiny-bert", "org/tiny-sst2")
    assert not [d for d in plan["deviations"] if d["what"] in ("base model", "dataset")], plan["deviations"]
    train = (run / "submission" / "train.py").read_text()
    assert "'model_name': 'org/tiny-bert'" in train and "'dataset': 'org/tiny-sst2'" in train
    metrics = json.loads((run / "reproduction" / "results" / "head" / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["accuracy"] <= 1.0 and metrics["n_test"] > 0 and metrics["n_train"] > 0
    report = json.loads((run / "report.json").read_text())
    rows = {r["id"]: r for r in report["assets"]["assets"]}
    for rid, kind in (("org/tiny-bert", "model"), ("org/tiny-sst2", "dataset")):
        r = rows[rid]
        assert r["kind"] == kind and r["source"] == fake_hub.url and r["stands_in_for"] is None
        assert r["revision"] == fake_hub.commit(kind, rid) and len(r["sha256"]) == 64
    assert "## Assets" in (run / "report.md").read_text() and "org/tiny-bert" in (run / "report.html").read_text()
