"""Scripted-model fixtures for graph tests: no network, no Docker, a fake sandbox."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO_PAPER = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"

PLAN_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
               "dataset": "movie review snippets", "methods": ["head", "lora"], "epochs": 1, "batch_size": 32,
               "learning_rate": 0.001}


def script(calls_log: Path | None = None, **extra) -> dict:
    rules = [
        {"match": "You plan the replication", "reply": PLAN_ANSWER},
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
