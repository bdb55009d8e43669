"""A judge call fits the model's context window: small local models get a trimmed prompt."""
from __future__ import annotations

import time

import pytest
from types import SimpleNamespace

from graders.aggregate import aggregate
from graders.judge import JudgeConfig, grade_submission
from graders.rubric import load_rubric


class RecordingJudge:
    name = "small-local"

    def __init__(self):
        self.prompts: list[int] = []

    def complete(self, messages, *, schema=None, temperature=0.0, seed=None, max_tokens=None):
        self.prompts.append(sum(len(m["content"]) for m in messages) + 4 * (max_tokens or 0))
        keys = schema["properties"]["verdicts"]["items"]["properties"]["key"]["enum"]
        data = {"verdicts": [{"key": k, "explanation": "seen", "score": 1} for k in keys]}
        return SimpleNamespace(text="", parsed=data, refusal=None, finish_reason="stop",
                               usage=SimpleNamespace(prompt_tokens=1, completion_tokens=1))


def _rubric(n):
    leaves = [{"id": f"l{i}", "requirements": f"criterion {i} about train.py", "weight": 1, "sub_tasks": [],
               "task_category": "Code Development", "finegrained_task_category": None} for i in range(n)]
    return load_rubric({"id": "root", "requirements": "r", "weight": 1, "sub_tasks": leaves,
                        "task_category": None, "finegrained_task_category": None})


def test_prompts_fit_an_8k_context(tmp_path):
    sub = tmp_path / "submission"
    sub.mkdir()
    for i in range(12):
        (sub / f"module_{i}.py").write_text(f"# file {i}\n" + "x = compute(1, 2, 3)  # padding\n" * 2000)
    judge = RecordingJudge()
    cfg = JudgeConfig.for_context(8192)
    graded = grade_submission(_rubric(10), submission_dir=sub, reproduction_dir=None, start_time=time.time(),
                              paper_text="A long paper. " * 50_000, model=judge, config=cfg)
    assert aggregate(graded).coverage == pytest.approx(1.0)  # every leaf still graded
    assert len(judge.prompts) == 3  # 10 leaves, at most 4 per call
    assert max(judge.prompts) < 8192 * 3  # ~3 characters per token, reply included


def test_large_or_unknown_context_keeps_the_defaults():
    assert JudgeConfig.for_context(None) == JudgeConfig()
    assert JudgeConfig.for_context(128_000) == JudgeConfig()
    assert JudgeConfig.for_context(8192).paper_chars < JudgeConfig().paper_chars
