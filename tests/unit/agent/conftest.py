"""Scripted-model fixtures for graph tests: no network, no Docker — the local sandbox backend runs
the agent's workspace and the reproduction for real (the scripted agent writes a tiny model that
trains in about a second), so these tests exercise the same tools, jobs and files as a real run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.eval.doubles import REPRODUCE, tiny_train
from papers.demo import table1

ROOT = Path(__file__).resolve().parents[3]
DEMO_PAPER = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"

# The two model-asked planning stages (agent/planning/stages.py). Result ids: the demo paper's
# Table 1 rows in order — R1 before fine-tuning, R2 head, R3 LoRA, R4 full.
CLAIMS_ANSWER = {"experiments": [
    {"name": "Classifier head only", "method": "train only the classifier head", "recipe": "head",
     "claim": f"the head alone reaches {table1()['head']:g}%", "results": ["R2"]},
    {"name": "LoRA", "method": "LoRA on the query and value projections", "recipe": "lora",
     "claim": "LoRA nearly matches full fine-tuning", "results": ["R3"]}]}
SETTINGS_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
                   "dataset": "movie review snippets", "experiments": [
                       {"experiment": "E1", "epochs": 1, "batch_size": 32, "learning_rate": 0.002,
                        "metrics": ["accuracy"], "targets": ["R2"]},
                       {"experiment": "E2", "epochs": 1, "batch_size": 32, "learning_rate": 0.001,
                        "metrics": ["accuracy"], "targets": ["R3"]}]}
STAGE1, STAGE2 = "Step 1 of 2: the paper's experiments", "Step 2 of 2: the settings"

# A model the scripted agent writes itself (the one the eval doubles write: naive Bayes on the
# movie-review snippets, a second of work, seeded by REPRO_SEED and shrunk by REPRO_SMOKE). BUG is
# a typo the agent's smoke run catches and edit_file fixes.
TINY_TRAIN = tiny_train()
BUG = "accuracy = sum(predict(w) == y for w, y in test) / len(test)"
BUGGY_TRAIN = TINY_TRAIN.replace(BUG, BUG.replace("len(test)", "len(tset)"))


def call(tool: str, **args) -> dict:
    return {"tool": tool, "args": args}


# One coding session, rule by rule: each answers the latest tool result (FileScriptedModel's
# "last"), so a run killed anywhere and resumed answers the same state the same way.
LOOP_RULES = [
    {"last": "Replicate \"", "calls": [call("paper_table", id="Table 1")]},
    {"last": "Table 1 (page", "calls": [call("write_file", path="train.py", content=BUGGY_TRAIN)]},
    {"last": "wrote train.py", "calls": [call("write_file", path="reproduce.sh", content=REPRODUCE)]},
    {"last": "wrote reproduce.sh", "calls": [call("bash", command="REPRO_SMOKE=1 bash reproduce.sh", timeout=120)]},
    {"last": "NameError", "calls": [call("edit_file", path="train.py", old="len(tset)", new="len(test)")]},
    {"last": "edited train.py", "calls": [call("start_job", name="smoke", command="REPRO_SMOKE=1 bash reproduce.sh")]},
    {"last": "started job 'smoke'", "calls": [call("wait_job", name="smoke", seconds=120)]},
    {"last": "job smoke: succeeded", "calls": [call("submit", note="naive Bayes baseline for the head experiment")]},
]
PLAN_RULES, JUDGE_RULE = (0, 1), 2 + len(LOOP_RULES)  # rule indexes in script(), for call counting


def script(calls_log: Path | None = None, **extra) -> dict:
    # a deep copy: callers adapt a session (a slow smoke job, ...) without touching the next test's
    rules = json.loads(json.dumps([{"match": STAGE1, "reply": CLAIMS_ANSWER}, {"match": STAGE2, "reply": SETTINGS_ANSWER},
                                   *LOOP_RULES, {"match": "", "verdicts": 1}]))
    return {"name": "scripted", "rules": rules, **({"calls_log": str(calls_log)} if calls_log else {}), **extra}


@pytest.fixture
def script_file(tmp_path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script(tmp_path / "calls.jsonl")))
    return path
