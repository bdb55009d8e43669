"""Scripted-model fixtures for graph tests: no network, no Docker — the local sandbox backend runs
the agent's workspace and the reproduction for real (the scripted agent writes a tiny model that
trains in about a second), so these tests exercise the same tools, jobs and files as a real run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO_PAPER = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"

# The two model-asked planning stages (agent/planning/stages.py). Result ids: the demo paper's
# Table 1 rows in order — R1 before fine-tuning, R2 head, R3 LoRA, R4 full.
CLAIMS_ANSWER = {"experiments": [
    {"name": "Classifier head only", "method": "train only the classifier head", "recipe": "head",
     "claim": "the head alone reaches 70.9%", "results": ["R2"]},
    {"name": "LoRA", "method": "LoRA on the query and value projections", "recipe": "lora",
     "claim": "LoRA nearly matches full fine-tuning", "results": ["R3"]}]}
SETTINGS_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
                   "dataset": "movie review snippets", "experiments": [
                       {"experiment": "E1", "epochs": 1, "batch_size": 32, "learning_rate": 0.002,
                        "metrics": ["accuracy"], "targets": ["R2"]},
                       {"experiment": "E2", "epochs": 1, "batch_size": 32, "learning_rate": 0.001,
                        "metrics": ["accuracy"], "targets": ["R3"]}]}
STAGE1, STAGE2 = "Step 1 of 2: the paper's experiments", "Step 2 of 2: the settings"

# A model the scripted agent writes itself: naive Bayes on the movie-review snippets, one second
# of work, seeded by REPRO_SEED and shrunk by REPRO_SMOKE (the submission contract). BUG is a
# typo the agent's smoke run catches and edit_file fixes.
TINY_TRAIN = '''"""Naive Bayes sentiment baseline (written by the agent)."""
import json, math, os, random, sys
from collections import Counter

exp = sys.argv[1]
seed = int(os.environ.get("REPRO_SEED", "42"))
rows = []
with open(os.path.join(os.environ["REPRO_DATA"], "movieReviewSnippets_GroundTruth.txt"), errors="replace") as f:
    for line in f:
        parts = line.rstrip("\\n").split("\\t")
        try:
            score = float(parts[1])
        except (IndexError, ValueError):
            continue
        if score:
            rows.append((parts[2].lower().split(), int(score > 0)))
random.Random(seed).shuffle(rows)
if os.environ.get("REPRO_SMOKE") == "1":
    rows = rows[:400]
cut = len(rows) // 5
test, train = rows[:cut], rows[cut:]
counts = [Counter(), Counter()]
for words, y in train:
    counts[y].update(words)
prior = sum(y for _, y in train) / len(train)
totals = [sum(c.values()) for c in counts]
vocab = len(set(counts[0]) | set(counts[1]))

def predict(words):
    s = math.log(prior / (1 - prior))
    for w in words:
        s += math.log((counts[1][w] + 1) / (totals[1] + vocab)) - math.log((counts[0][w] + 1) / (totals[0] + vocab))
    return int(s > 0)

accuracy = sum(predict(w) == y for w, y in test) / len(test)
majority = max(prior, 1 - prior)
os.makedirs(f"results/{exp}", exist_ok=True)
json.dump({"metrics": {"accuracy": round(accuracy, 4)}, "before": {"accuracy": round(majority, 4)},
           "n_train": len(train)}, open(f"results/{exp}/metrics.json", "w"), indent=1)
print(f"{exp}: accuracy {accuracy:.4f} (majority {majority:.4f})")
'''
BUG = "accuracy = sum(predict(w) == y for w, y in test) / len(test)"
BUGGY_TRAIN = TINY_TRAIN.replace(BUG, BUG.replace("len(test)", "len(tset)"))
REPRODUCE = "#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nrm -rf results\npython train.py head\n"


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
    rules = [{"match": STAGE1, "reply": CLAIMS_ANSWER}, {"match": STAGE2, "reply": SETTINGS_ANSWER},
             *LOOP_RULES, {"match": "", "verdicts": 1}]
    return {"name": "scripted", "rules": rules, **({"calls_log": str(calls_log)} if calls_log else {}), **extra}


@pytest.fixture
def script_file(tmp_path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script(tmp_path / "calls.jsonl")))
    return path
