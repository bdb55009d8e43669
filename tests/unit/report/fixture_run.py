"""Builds small but complete run directories for the report and web-UI tests.

The finished run goes through the real report path (agent.nodes.report.build_report_data ->
graders.report.write_report); only the agent's work (plan, code, results, the judge's tree)
is written by hand here.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from agent import review_store
from agent.config import RunConfig
from agent.nodes.report import build_report_data
from graders.report import write_report

TRAIN_V0 = """\
# config
METHOD = "lora"
SEED = 42
EPOCHS = 1


def main():
    import random
    random.seed(SEED)
    lora_r = 8
    lora_alpha = 16
    print("accuracy", acc)  # bug: acc undefined
"""
TRAIN_FINAL = TRAIN_V0.replace('    print("accuracy", acc)  # bug: acc undefined\n',
                               '    acc = 0.8\n    print("accuracy", acc)\n')

EXPERIMENT = {"name": "LoRA", "method": "lora",
              "reported_after": {"value": 81.2, "text": "81.2", "table": "Table 1", "row": "LoRA",
                                 "column": "Accuracy", "page": 1},
              "reported_before": {"value": 49.0, "text": "49.0", "table": "Table 1", "row": "Before fine-tuning",
                                  "column": "Accuracy", "page": 1}}
PLAN = {"task": "sentiment", "metric": "accuracy", "paper_model": "MiniLM", "paper_dataset": "snippets",
        "model": "all-MiniLM-L6-v2", "dataset": "snippets.txt", "recipe": "sequence-classification",
        "experiments": [EXPERIMENT], "hyper": {"epochs": 1, "seed": 42},
        "deviations": [{"what": "training data size", "paper": "full", "ours": "300 sentences",
                        "reason": "scaled-down run"}], "notes": [], "source": "model"}
RESULTS = {"lora": {"before": 0.5, "after": 0.8, "metric": "accuracy", "train_seconds": 3.0,
                    "trainable_params": 1000, "total_params": 50000, "file": "results/lora/metrics.json",
                    "history": [{"step": 0, "loss": 0.7}, {"step": 5, "loss": 0.5}, {"step": 10, "loss": 0.3}]}}


def _leaf(lid: str, req: str, cat: str, score: float, valid: bool, expl: str) -> dict:
    return {"id": lid, "requirements": req, "weight": 1, "score": score, "valid_score": valid, "task_category": cat,
            "explanation": expl, "judge_metadata": {"model": "judge-x"}, "sub_tasks": []}


def graded_tree() -> dict:
    """Root score 0.5: code group 0.5 (one pass, one fail), results group 0.5 (one pass, one unscored)."""
    code = [_leaf("leaf-lora", "Code implements LoRA with rank 8 and alpha 16.", "Code Development", 1.0, True,
                  "train.py:10-11 sets lora_r = 8 and lora_alpha = 16."),
            _leaf("leaf-seed", "Code fixes the random seed 42.", "Code Development", 0.0, True,
                  "I could not find a seed.")]
    results = [_leaf("leaf-acc", "LoRA accuracy after fine-tuning is reported.", "Result Analysis", 1.0, True,
                     "results/lora/metrics.json shows the accuracy."),
               _leaf("leaf-gap", "LoRA accuracy is within 3 points of Table 1.", "Result Analysis", 0.0, False,
                     "No valid verdict after 3 attempts.")]
    group = lambda gid, req, subs: {"id": gid, "requirements": req, "weight": 1, "score": 0.5, "valid_score": True,
                                    "task_category": None, "explanation": "Aggregated score from sub-tasks.",
                                    "judge_metadata": None, "sub_tasks": subs}
    root = group("root", "The paper has been replicated.", [group("g-code", "The method is implemented.", code),
                                                            group("g-res", "Table 1 is reproduced.", results)])
    return root


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _config(runs_dir: Path, run_id: str) -> RunConfig:
    pdf = runs_dir / "paper.pdf"
    if not pdf.exists():
        pdf.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
                        b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
    cfg = RunConfig(run_id=run_id, runs_dir=runs_dir, paper_path=pdf.resolve(), sandbox_backend="fake")
    _write(cfg.run_dir / "run.json", cfg.model_dump_json(indent=2))
    _write(cfg.run_dir / "plan.json", json.dumps({"model_answer": {}, "problems": [], "plan": PLAN}))
    return cfg


def finished_run(runs_dir: Path, run_id: str = "demo-finished") -> Path:
    cfg = _config(runs_dir, run_id)
    d = cfg.run_dir
    _write(d / "iterations" / "0" / "train.py", TRAIN_V0)
    _write(d / "submission" / "train.py", TRAIN_FINAL)
    _write(d / "submission" / "reproduce.sh", "#!/bin/bash\npython train.py --method lora\n")
    _write(d / "reproduction" / "train.py", TRAIN_FINAL)
    metrics = {"method": "lora", "metric": "accuracy", "before": {"accuracy": 0.5}, "after": {"accuracy": 0.8},
               "history": RESULTS["lora"]["history"]}
    _write(d / "reproduction" / "results" / "lora" / "metrics.json", json.dumps(metrics, indent=2))
    _write(d / "reproduction" / "reproduce.log", "epoch 0 step 10 loss 0.3\naccuracy after fine-tuning (lora): 0.8\n")
    _write(d / "logs" / "execute-0.log", "$ python train.py\n[failed after 1.5s]\n")
    _write(d / "logs" / "execute-1.log", "$ python train.py\n[succeeded after 2.5s]\n")
    rep = {"ok": True, "summary": "succeeded after 4.0s", "duration_s": 4.0, "results": RESULTS}
    _write(d / "reproduction.json", json.dumps(rep))
    _write(d / "graded.json", json.dumps(graded_tree(), indent=4))
    state = {"run_id": run_id, "status": "done", "started_at": time.time() - 60,
             "paper": {"title": "LoRA on a CPU", "sha256": "ab" * 32, "pages": 1, "warnings": []},
             "plan": PLAN, "reproduction": rep,
             "grade": {"score": 0.5, "coverage": 0.75, "leaves": 4, "invalid_leaves": 1, "rubric_source": "test",
                       "judge_model": "judge-x", "judge_warnings": [],
                       "judge_usage": {"prompt_tokens": 1000, "completion_tokens": 100, "calls": 2}},
             "usage": {"prompt_tokens": 500, "completion_tokens": 50, "calls": 3, "reasks": 0},
             "debug_log": [{"iteration": 1, "error": "NameError: acc", "applied": True, "file": "train.py",
                            "explanation": "define acc before printing it"}]}
    write_report(build_report_data(state, cfg, {"agent": "agent-x", "judge": "judge-x"}), d)
    return d


def paused_run(runs_dir: Path, run_id: str = "demo-paused") -> Path:
    cfg = _config(runs_dir, run_id)
    review_store.request_review(cfg.run_dir, stage="plan", summary="Check the plan before any code is written.")
    return cfg.run_dir


def running_run(runs_dir: Path, run_id: str = "demo-running", done: tuple[str, ...] = ("ingest", "plan")) -> Path:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    cfg = _config(runs_dir, run_id)
    conn = sqlite3.connect(cfg.run_dir / "checkpoints.sqlite")
    saver = SqliteSaver(conn)
    saver.setup()
    ck = empty_checkpoint()
    ck["channel_values"] = {"node_log": list(done), "status": "running"}
    saver.put({"configurable": {"thread_id": run_id, "checkpoint_ns": ""}}, ck, {}, {"node_log": 1})
    conn.commit()
    conn.close()
    _write(cfg.run_dir / "logs" / "execute-0.log", "$ python train.py\nepoch 0 step 3/10 loss 0.6\r"
                                                    "epoch 0 step 4/10 loss 0.5\n")
    return cfg.run_dir
