"""End to end on the embedded defaults: the real SmolLM2 server plans and judges, the real Docker
sandbox trains (scaled down to seconds) and reproduces. Slow: minutes on 2 cores."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import RunConfig
from agent.runner import execute_run

pytestmark = [pytest.mark.slow, pytest.mark.docker]
pytest.importorskip("llama_cpp", reason="llama-cpp-python is built by scripts/setup.sh")

DEMO = Path(__file__).resolve().parents[2] / "papers" / "demo-minilm-sentiment"


# Three leaves, one per category: the point is the whole path on the real model, not a long grading.
SMALL_RUBRIC = {
    "id": "root", "requirements": "The paper has been replicated.", "weight": 1, "task_category": None,
    "finegrained_task_category": None, "sub_tasks": [
        {"id": "code", "requirements": "Code trains a classifier with LoRA.", "weight": 1, "sub_tasks": [],
         "task_category": "Code Development", "finegrained_task_category": None},
        {"id": "exec", "requirements": "reproduce.sh runs the LoRA experiment to completion.", "weight": 1,
         "sub_tasks": [], "task_category": "Code Execution", "finegrained_task_category": None},
        {"id": "result", "requirements": "A LoRA accuracy after fine-tuning is reported.", "weight": 1,
         "sub_tasks": [], "task_category": "Result Analysis", "finegrained_task_category": None},
    ]}


@pytest.mark.timeout(1800)
def test_demo_paper_end_to_end_on_the_embedded_model(tmp_path, docker_engine):
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps(SMALL_RUBRIC))
    cfg = RunConfig(run_id="embedded-e2e", runs_dir=tmp_path / "runs", paper_path=DEMO / "paper.pdf",
                    rubric_path=rubric, train_limit=32, epochs=1)
    state = execute_run(cfg)  # no model given: the embedded server starts and stops with the run
    assert state["status"] == "done", state.get("stop_reason")
    report = json.loads((cfg.run_dir / "report.json").read_text())
    assert "smollm2" in json.dumps(report["models"]).lower()
    # reproduced numbers come from the fresh container's files, next to the paper's
    rows = [r for r in report["comparison"] if r.get("reproduced") and r.get("reported")]
    assert rows, report["comparison"]
    for r in rows:
        assert (cfg.run_dir / r["reproduced"]["file"]).is_file()
    grade = report["grade"]
    assert 0.0 <= grade["score"] <= 1.0 and 0.0 < grade["coverage"] <= 1.0
    assert state["usage"]["calls"] >= 1
