"""Scripted-model fixtures for graph tests: no network, no Docker, a fake sandbox."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO_PAPER = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"

# The two model-asked planning stages (agent/nodes/plan.py). Result ids: the demo paper's
# Table 1 rows in order — R1 before fine-tuning, R2 head, R3 LoRA, R4 full.
CLAIMS_ANSWER = {"experiments": [
    {"name": "Classifier head only", "method": "head", "claim": "the head alone reaches 70.9%", "result": "R2"},
    {"name": "LoRA", "method": "lora", "claim": "LoRA nearly matches full fine-tuning", "result": "R3"}]}
SETTINGS_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
                   "dataset": "movie review snippets", "experiments": [
                       {"method": "head", "epochs": 1, "batch_size": 32, "learning_rate": 0.002,
                        "metrics": ["accuracy"], "targets": ["R2"]},
                       {"method": "lora", "epochs": 1, "batch_size": 32, "learning_rate": 0.001,
                        "metrics": ["accuracy"], "targets": ["R3"]}]}
STAGE1, STAGE2 = "Step 1 of 2: the paper's experiments", "Step 2 of 2: the settings"
PLAN_RULES, DEBUG_RULE, JUDGE_RULE = (0, 1), 2, 3  # rule indexes in script(), for call counting


def script(calls_log: Path | None = None, **extra) -> dict:
    rules = [
        {"match": STAGE1, "reply": CLAIMS_ANSWER},
        {"match": STAGE2, "reply": SETTINGS_ANSWER},
        {"match": "A training script failed", "reply": {"explanation": "scripted", "file": "train.py",
                                                        "find": "import argparse", "replace": "import argparse  # fixed"}},
        {"match": "", "verdicts": 1},
    ]
    return {"name": "scripted", "rules": rules, **({"calls_log": str(calls_log)} if calls_log else {}), **extra}


@pytest.fixture
def script_file(tmp_path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script(tmp_path / "calls.jsonl")))
    return path
