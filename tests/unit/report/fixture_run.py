"""Run directories for the report and web-UI tests.

* ``finished_run`` goes through the real report path (agent.nodes.report.build_report_data ->
  graders.report.write_report); only the agent's work is written by hand here, in the shapes the
  runner writes: the plan (validated by agent.plan.Plan), the loop's trajectory/<turn>.json
  (written with agent.loop.trajectory), steps/<n>.json manifests with their blobs/, the
  submission, a reproduction in the contract format (graders.contract) and the judge's tree.
* ``paused_run`` is produced by the real runner: agent.runner.execute_run with review=True on
  the demo paper, the local sandbox backend and the file-scripted model of tests/unit/agent
  (its script() and LOOP_RULES). It pauses at the plan review, exactly as a real run does;
  ``resume_run`` resumes it the way ``repro run --resume`` does.
* ``running_run`` is a checkpoint in the middle of the graph (ingest and plan done).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sqlite3
import sys
import time
from pathlib import Path

from agent import review_store
from agent.config import ModelConfig, RunConfig
from agent.loop import trajectory
from agent.nodes.report import build_report_data
from agent.plan import Plan
from graders.files import write_json
from graders.report import write_report

ROOT = Path(__file__).resolve().parents[3]

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
REPRODUCE_SH = "#!/bin/bash\nset -e\npython train.py --method lora\n"


def _reported(value: float, row: str) -> dict:
    return {"value": value, "text": f"{value:.1f}", "table": "Table 1", "row": row, "column": "Accuracy", "page": 1,
            "metric": "accuracy"}


BEFORE = _reported(49.0, "Before fine-tuning")
LORA = {"id": "lora", "name": "LoRA", "method": "LoRA on the query and value projections", "recipe": "lora",
        "reported_after": _reported(81.2, "LoRA"), "reported_before": BEFORE, "targets": [_reported(81.2, "LoRA")],
        "metrics": ["accuracy"], "claim": "LoRA nearly matches full fine-tuning"}
FULL = {"id": "full", "name": "Full fine-tuning", "method": "fine-tune every weight", "recipe": "full",
        "reported_after": _reported(83.9, "Full fine-tuning"), "reported_before": BEFORE,
        "targets": [_reported(83.9, "Full fine-tuning")], "metrics": ["accuracy"]}
# the plan as the plan node stores it: agent.plan.Plan, dumped to JSON
PLAN = Plan.model_validate({
    "task": "sentiment", "metric": "accuracy", "paper_model": "MiniLM", "paper_dataset": "snippets",
    "model": "all-MiniLM-L6-v2", "dataset": "snippets.txt", "experiments": [LORA, FULL],
    "hyper": {"epochs": 1, "seed": 42},
    "deviations": [{"what": "training data size", "paper": "full", "ours": "300 sentences",
                    "reason": "scaled-down run"}], "notes": [], "source": "model"}).model_dump(mode="json")
LOSS = [[0.0, 0.7], [5.0, 0.5], [10.0, 0.3]]
# results/lora/metrics.json as the submission writes it (graders.contract.ExperimentResult)
METRICS_FILE = {"metrics": {"accuracy": 0.8}, "before": {"accuracy": 0.5}, "curves": {"loss": LOSS},
                "train_seconds": 3.0, "trainable_params": 1000, "total_params": 50000}
# ... and as the reproduction reads it (graders.contract.read_results)
RESULTS = {"lora": {"metrics": {"accuracy": 0.8}, "before": {"accuracy": 0.5}, "curves": {"loss": LOSS},
                    "file": "results/lora/metrics.json",
                    "info": {"trainable_params": 1000, "total_params": 50000, "train_seconds": 3.0}}}
# what turn 2's smoke run printed: long (folded in the trajectory view) and with markup to escape
SMOKE_OUTPUT = "\n".join([f"epoch 0 step {i}/30 loss {0.7 - i * 0.01:.2f} <unk>" for i in range(30)] + [
    "Traceback (most recent call last):", '  File "train.py", line 12, in main',
    "NameError: name 'acc' is not defined <script>alert(1)</script>", "[exit code 1 after 1.50 s]"])
GUIDE = "reproduce.sh is missing: write it before the smoke run"
GUIDED_MENU = ["read_file", "write_file", "edit_file", "bash"]
ALL_TOOLS = ["bash", "start_job", "job_status", "wait_job", "stop_job", "read_file", "search", "write_file",
             "edit_file", "paper_section", "paper_table", "paper_search", "scaffold", "submit"]


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


def bare_run(runs_dir: Path, run_id: str) -> RunConfig:
    """A run directory with its run.json and plan.json only."""
    pdf = runs_dir / "paper.pdf"
    if not pdf.exists():
        pdf.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
                        b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
    cfg = RunConfig(run_id=run_id, runs_dir=runs_dir, paper_path=pdf.resolve(), sandbox_backend="fake")
    _write(cfg.run_dir / "run.json", cfg.model_dump_json(indent=2))
    write_json(cfg.run_dir / "plan.json", {"stages": {"stage-1-claims.json": "model",
                                                      "stage-2-experiments.json": "model"},
                                           "problems": [], "plan": PLAN})
    return cfg


# ---------------------------------------------------------------- the coding agent's loop
def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Workspace:
    """Writes what agent.workspace.Workspace.sync keeps on the host: blobs, steps/<n>.json, the
    latest manifest and submission/."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.files = run_dir, {}

    def sync(self, step: int, files: dict[str, str | None]) -> dict:
        before = dict(self.files)
        for rel, text in files.items():
            if text is None:
                self.files.pop(rel, None)
                (self.run_dir / "submission" / rel).unlink(missing_ok=True)
                continue
            self.files[rel] = sha(text)
            _write(self.run_dir / "blobs" / sha(text)[:2] / sha(text), text)
            _write(self.run_dir / "submission" / rel, text)
        write_json(self.run_dir / "workspace-manifest.json", self.files)
        write_json(self.run_dir / "steps" / f"{step:04d}.json", {"step": step, "files": self.files})
        return {"added": sorted(set(self.files) - set(before)),
                "changed": sorted(r for r in set(self.files) & set(before) if self.files[r] != before[r]),
                "removed": sorted(set(before) - set(self.files))}


def _turn(run_dir: Path, ws: _Workspace, n: int, text: str, calls: list[tuple], *, notes=(), guide=None) -> None:
    """One model turn as agent.loop.nodes writes it: the reply first, then each call's result."""
    at = time.time() - 60 + n
    record = {"turn": n, "at": at, "notes": list(notes), "menu": GUIDED_MENU if guide else ALL_TOOLS,
              "guide": guide, "trimmed": {"shortened": 0, "dropped": 0},
              "usage": {"prompt_tokens": 900 + 100 * n, "completion_tokens": 40, "calls": 1, "reasks": 0},
              "finish_reason": "stop",
              "reply": {"text": text, "calls": [{"id": f"call{n}-{i}", "name": name, "arguments": args, "error": None}
                                                for i, (name, args, *_rest) in enumerate(calls)]},
              "results": []}
    trajectory.save_turn(run_dir, record)
    for i, (name, args, content, ok, files) in enumerate(calls):
        changes = ws.sync(n, files) if files is not None else None
        trajectory.add_result(run_dir, n, {"id": f"call{n}-{i}", "name": name, "arguments": args, "content": content,
                                           "ok": ok, "malformed": False, "meta": {}, "changes": changes,
                                           "seconds": 1.5 if name == "bash" else 0.01, "at": at + 0.5})


def write_trajectory(run_dir: Path) -> dict:
    """Four turns: write the buggy train.py; its smoke run fails; fix it and write reproduce.sh
    (a turn where the guide narrowed the menu); the smoke run passes and the agent submits.
    Returns the loop record the checkpoint would hold."""
    ws = _Workspace(run_dir)
    _turn(run_dir, ws, 1, "I will start with the training script.",
          [("write_file", {"path": "train.py", "content": TRAIN_V0}, "wrote train.py (12 lines)", True,
            {"train.py": TRAIN_V0})])
    _turn(run_dir, ws, 2, "Now a smoke run.",
          [("bash", {"command": "REPRO_SMOKE=1 python train.py", "timeout": 120}, SMOKE_OUTPUT, False, {})])
    _turn(run_dir, ws, 3, "acc is undefined: define it, then write reproduce.sh.",
          [("edit_file", {"path": "train.py", "old": '    print("accuracy", acc)  # bug: acc undefined',
                          "new": '    acc = 0.8\n    print("accuracy", acc)'}, "edited train.py", True,
            {"train.py": TRAIN_FINAL}),
           ("write_file", {"path": "reproduce.sh", "content": REPRODUCE_SH}, "wrote reproduce.sh (3 lines)", True,
            {"reproduce.sh": REPRODUCE_SH})],
          notes=["Reminder: 2 of 60 turns used; the smoke run failed."], guide=GUIDE)
    _turn(run_dir, ws, 4, "The smoke run passes; submitting.",
          [("bash", {"command": "REPRO_SMOKE=1 bash reproduce.sh", "timeout": 120},
            "accuracy 0.8\n[exit code 0 after 2.50 s]", True, {}),
           ("submit", {"note": "LoRA with rank 8"}, "submitted: the smoke run of these files passed", True, None)])
    _write(run_dir / "logs" / "t0002-call2-0.log", SMOKE_OUTPUT + "\n")
    return {"started_at": time.time() - 70, "turn": 4, "tool_calls": 6, "malformed": 0, "malformed_in_row": 0,
            "nudges": 0, "reminders": 1, "guided": 0, "guide_calls": 0, "model_calls": 6, "exit": "submitted", "exit_detail": "LoRA with rank 8",
            "usage": {"prompt_tokens": 4200, "completion_tokens": 160, "calls": 4, "reasks": 0}, "sandbox_s": 4.0,
            "smoke": {"passed": True, "files": "x", "how": "bash", "returncode": 0},
            "submitted": {"note": "LoRA with rank 8", "step": 4, "forced": False}, "jobs_stopped_at_exit": [],
            "exit_notes": [], "files": ws.files}


def finished_run(runs_dir: Path, run_id: str = "demo-finished") -> Path:
    cfg = bare_run(runs_dir, run_id)
    d = cfg.run_dir
    loop = write_trajectory(d)
    files = loop.pop("files")
    _write(d / "reproduction" / "train.py", TRAIN_FINAL)
    _write(d / "reproduction" / "reproduce.sh", REPRODUCE_SH)
    _write(d / "reproduction" / "results" / "lora" / "metrics.json", json.dumps(METRICS_FILE, indent=2))
    _write(d / "reproduction" / "reproduce.log", "epoch 0 step 10 loss 0.3\naccuracy after fine-tuning (lora): 0.8\n")
    rep = {"ok": True, "returncode": 0, "summary": "succeeded after 4.0s", "start_time": time.time() - 10,
           "duration_s": 4.0, "timed_out": False, "oom_killed": False, "dir": "reproduction", "results": RESULTS,
           "seed": 42, "ignored": []}
    write_json(d / "reproduction.json", rep)
    write_json(d / "graded.json", graded_tree(), indent=4)
    state = {"run_id": run_id, "status": "done", "started_at": time.time() - 60,
             "paper": {"title": "LoRA on a CPU", "sha256": "ab" * 32, "pages": 1, "warnings": []},
             "plan": PLAN, "files": files, "loop": loop,
             # the reproduce node keeps curves on disk only
             "reproduction": {**rep, "results": {k: {x: y for x, y in r.items() if x != "curves"}
                                                 for k, r in RESULTS.items()}},
             "grade": {"score": 0.5, "coverage": 0.75, "leaves": 4, "invalid_leaves": 1, "rubric_source": "test",
                       "judge_model": "judge-x", "judge_warnings": [],
                       "judge_usage": {"prompt_tokens": 1000, "completion_tokens": 100, "calls": 2}},
             "usage": {"prompt_tokens": 500, "completion_tokens": 50, "calls": 3, "reasks": 0},
             "node_log": ["ingest", "plan", "code", "reproduce", "grade", "report"]}
    write_report(build_report_data(state, cfg, {"agent": "agent-x", "judge": "judge-x"}), d)
    return d


# ---------------------------------------------------------------- a pause of the real runner
SCRIPTED = ModelConfig(model="scripted", base_url="http://127.0.0.1:9/v1")  # never called: a scripted object answers


def agent_script():
    """tests/unit/agent/conftest.py (script(), LOOP_RULES, DEMO_PAPER), loaded by path."""
    name = "repro_agent_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "unit" / "agent" / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


def scripted_config(runs_dir: Path, run_id: str, **kw) -> RunConfig:
    return RunConfig(run_id=run_id, runs_dir=runs_dir, paper_path=agent_script().DEMO_PAPER,
                     sandbox_backend="local", agent_model=SCRIPTED, judge_model=SCRIPTED, guide="off", **kw)


def scripted_model(runs_dir: Path, run_id: str):
    """A FileScriptedModel with the agent tests' script (planning answers, the coding session,
    the judge's verdicts); its rule file sits beside the runs, not in one."""
    from agent.scripted import FileScriptedModel

    path = Path(runs_dir) / ".scripts" / f"{run_id}.json"
    if not path.exists():
        _write(path, json.dumps(agent_script().script()))
    return FileScriptedModel(path)


def paused_run(runs_dir: Path, run_id: str = "demo-paused") -> Path:
    """The real runner, review=True: it pauses at the plan review (review/pending.json)."""
    from agent.runner import execute_run

    cfg = scripted_config(runs_dir, run_id, review=True)
    state = execute_run(cfg, model=scripted_model(runs_dir, run_id))
    assert state["status"] == "paused" and review_store.pending_review(cfg.run_dir)["stage"] == "plan", state
    return cfg.run_dir


def resume_run(runs_dir: Path, run_id: str = "demo-paused", **kw) -> dict:
    """What `repro run --resume RUN_ID` does: the saved run.json, the same scripted model."""
    from agent.runner import execute_run, load_run_config

    return execute_run(load_run_config(run_id, runs_dir), resume=True, model=scripted_model(runs_dir, run_id), **kw)


def running_run(runs_dir: Path, run_id: str = "demo-running", done: tuple[str, ...] = ("ingest", "plan")) -> Path:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    cfg = bare_run(runs_dir, run_id)
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
