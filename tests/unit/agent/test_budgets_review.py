"""Budgets stop a run cleanly; the review gate pauses and resumes (scripted model, fake sandbox)."""
from __future__ import annotations

import json

import pytest

from agent import review_store
from agent.config import Budgets, Price, RunConfig
from agent.runner import execute_run
from agent.scripted import FileScriptedModel
from sandbox.base import ExecResult
from sandbox.fake import FakeSandbox

from .conftest import DEMO_PAPER


def _cfg(tmp_path, **kw) -> RunConfig:
    return RunConfig(run_id="t1", runs_dir=tmp_path / "runs", paper_path=DEMO_PAPER, sandbox_backend="fake",
                     train_limit=32, epochs=1, **kw)


def _factory(result: ExecResult | None = None, sandboxes: list | None = None):
    def make(role):
        sb = FakeSandbox((lambda cmd: result) if result else None, run_id="t1")
        if sandboxes is not None:
            sandboxes.append(sb)
        return sb
    return make


def _run(cfg, script_file, **kw):
    model = FileScriptedModel(script_file)
    return execute_run(cfg, model=model, factory=kw.pop("factory", _factory()), **kw), model


def _report(cfg) -> dict:
    return json.loads((cfg.run_dir / "report.json").read_text())


def test_uninterrupted_scripted_run_completes(tmp_path, script_file):
    cfg = _cfg(tmp_path)
    state, model = _run(cfg, script_file)
    assert state["status"] == "done"
    assert state["node_log"] == ["ingest", "plan", "implement", "execute", "reproduce", "grade", "report"]
    assert [e["method"] for e in state["plan"]["experiments"]] == ["head", "lora", "full"]  # full: the paper reports it
    assert _report(cfg)["status"] == "done"


@pytest.mark.parametrize("budgets,model_name,expect,last_before_stop", [
    (Budgets(max_model_tokens=50), "scripted", "model token budget exceeded", "plan"),
    (Budgets(max_dollars=0.0001, prices={"gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10)}), "gpt-4o",
     "dollar budget exceeded", "plan"),
    (Budgets(max_dollars=0.0001, prices={}), "mystery-model", "dollar budget exceeded", "plan"),
    (Budgets(max_wall_s=0.0), "scripted", "wall-time budget exceeded", "plan"),
])
def test_each_model_budget_stops_cleanly(tmp_path, script_file, budgets, model_name, expect, last_before_stop):
    cfg = _cfg(tmp_path, budgets=budgets)
    model = FileScriptedModel(script_file)
    model.name = model_name
    state = execute_run(cfg, model=model, factory=_factory())
    assert state["status"] == "stopped" and expect in state["stop_reason"]
    assert state["node_log"][-3:] == [last_before_stop, "stop", "report"]
    rep = _report(cfg)
    assert rep["status"] == "stopped" and expect in rep["stop_reason"] and expect in rep["verdict"]
    assert rep["grade"] is None  # no grading after a budget stop: the report is partial and says why


def test_free_model_is_not_stopped_by_dollar_budget(tmp_path, script_file):
    cfg = _cfg(tmp_path, budgets=Budgets(max_dollars=0.0))  # "scripted" is priced 0 in the table
    state, _ = _run(cfg, script_file)
    assert state["status"] == "done"


def test_sandbox_time_budget_stops_after_execute(tmp_path, script_file):
    cfg = _cfg(tmp_path, budgets=Budgets(max_sandbox_s=50))
    sandboxes: list = []
    state, _ = _run(cfg, script_file, factory=_factory(ExecResult(returncode=0, duration_s=40.0), sandboxes))
    assert state["status"] == "stopped" and "sandbox-time budget exceeded (80 s > 50 s)" in state["stop_reason"]
    assert state["node_log"][-3:] == ["execute", "stop", "report"]
    # the second command's timeout was capped by what the budget had left
    timeouts = [c["timeout"] for c in sandboxes[0].commands]
    assert timeouts[0] == 50 and timeouts[1] == pytest.approx(10) and len(timeouts) == 2


def test_debug_iteration_budget_bounds_the_loop(tmp_path, script_file):
    cfg = _cfg(tmp_path, budgets=Budgets(max_debug_iterations=2))
    fail = ExecResult(returncode=1, stderr="Traceback: boom", duration_s=1.0)
    state, _ = _run(cfg, script_file, factory=_factory(fail))
    assert state["node_log"].count("debug") == 2 and state["node_log"].count("execute") == 3
    assert state["node_log"][-2:] == ["grade", "report"]
    assert all(e["applied"] for e in state["debug_log"])
    assert "# fixed" in (cfg.run_dir / "submission" / "train.py").read_text()
    # the submission before each edit is kept for the review UI's diffs (iterations/0 = as implemented)
    snaps = sorted(p.name for p in (cfg.run_dir / "iterations").iterdir())
    assert snaps == ["0", "1"]
    assert "# fixed" not in (cfg.run_dir / "iterations" / "0" / "train.py").read_text()
    from agent.web.code import iteration_diffs
    assert iteration_diffs(cfg.run_dir)  # consecutive snapshots give diffs


def test_review_gate_pauses_and_resumes_with_feedback_edit_approve(tmp_path, script_file):
    cfg = _cfg(tmp_path, review=True)
    model = FileScriptedModel(script_file)
    state = execute_run(cfg, model=model, factory=_factory())
    assert state["status"] == "paused" and state["node_log"] == ["ingest", "plan"]
    pending = review_store.read_pending(cfg.run_dir)
    assert pending["stage"] == "plan" and pending["round"] == 1 and pending["plan"]["experiments"]
    assert "+++ b/plan.json" in pending["diff"]

    # resuming without a decision stays paused and asks nobody
    calls = model.calls
    assert execute_run(cfg, resume=True, model=model, factory=_factory())["status"] == "paused"
    assert model.calls == calls
    with pytest.raises(ValueError, match="waits for a plan review"):
        review_store.write_decision(cfg.run_dir, {"stage": "code", "action": "approve"})

    review_store.write_decision(cfg.run_dir, {"stage": "plan", "action": "feedback", "text": "also try full"})
    state = execute_run(cfg, resume=True, model=model, factory=_factory())
    assert model.calls == calls + 2  # re-planned with the feedback (both model-asked planning stages)
    assert "also try full" in str(model_last_user(script_file, model))
    assert state["status"] == "paused" and review_store.read_pending(cfg.run_dir)["round"] == 2

    plan = review_store.read_pending(cfg.run_dir)["plan"]
    plan["hyper"]["epochs"] = 2
    review_store.write_decision(cfg.run_dir, {"stage": "plan", "action": "edit", "plan": plan})
    state = execute_run(cfg, resume=True, model=model, factory=_factory())
    assert state["status"] == "paused" and state["plan"]["hyper"]["epochs"] == 2
    pending = review_store.read_pending(cfg.run_dir)
    assert pending["stage"] == "code" and "train.py" in pending["files"]
    assert "'epochs': 2" in pending["diff"]  # the code the edited plan produced, shown as a diff

    train = (cfg.run_dir / "submission" / "train.py").read_text()
    review_store.write_decision(cfg.run_dir, {"stage": "code", "action": "edit",
                                              "files": {"train.py": train.replace("'seed': 42", "'seed': 7")}})
    state = execute_run(cfg, resume=True, model=model, factory=_factory())
    assert state["status"] == "done"
    assert "'seed': 7" in (cfg.run_dir / "submission" / "train.py").read_text()
    assert [h["action"] for h in state["review"]["history"]] == ["feedback", "edit", "edit"]
    assert state["node_log"] == ["ingest", "plan", "review_plan", "plan", "review_plan", "implement", "review_code",
                                 "execute", "reproduce", "grade", "report"]
    assert review_store.read_pending(cfg.run_dir) is None
    assert len(list((cfg.run_dir / "review" / "history").glob("*.json"))) == 3


def model_last_user(script_file, model) -> str:
    return model.last_text


def test_decisions_are_validated(tmp_path):
    with pytest.raises(ValueError):
        review_store.ReviewDecision.model_validate({"stage": "plan", "action": "feedback", "text": " "})
    with pytest.raises(ValueError):
        review_store.ReviewDecision.model_validate({"stage": "code", "action": "edit", "files": {"../x": "y"}})
    with pytest.raises(ValueError, match="not waiting"):
        review_store.write_decision(tmp_path, {"stage": "plan", "action": "approve"})
