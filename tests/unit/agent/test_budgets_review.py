"""The whole graph with a scripted model on the local sandbox backend: a real (tiny) coding session
through the tool loop, budgets that stop it with a graded partial submission, the review gate."""
from __future__ import annotations

import json

import pytest

from agent import review_store
from agent.config import Budgets, ModelConfig, Price, RunConfig
from agent.loop.nodes import REASK_TEMPERATURE
from agent.runner import execute_run
from agent.scripted import FileScriptedModel

from .conftest import DEMO_PAPER, REPRODUCE
from papers.demo import table1

TABLE1 = table1()  # the demo paper's Table 1, as its PDF prints it

SCRIPTED = ModelConfig(model="scripted", base_url="http://127.0.0.1:9/v1")  # never called: a scripted object answers


def _cfg(tmp_path, **kw) -> RunConfig:
    return RunConfig(run_id="t1", runs_dir=tmp_path / "runs", paper_path=DEMO_PAPER, sandbox_backend="local",
                     agent_model=SCRIPTED, judge_model=SCRIPTED, guide="off", **kw)


def _run(cfg, script_file, **kw):
    model = FileScriptedModel(script_file)
    return execute_run(cfg, model=model, **kw), model


def _report(cfg) -> dict:
    return json.loads((cfg.run_dir / "report.json").read_text())


def _leaves(node: dict) -> list[dict]:
    return [node] if not node["sub_tasks"] else [x for c in node["sub_tasks"] for x in _leaves(c)]


def test_a_scripted_coding_session_writes_runs_fixes_and_submits(tmp_path, script_file):
    cfg = _cfg(tmp_path)
    state, model = _run(cfg, script_file)
    assert state["status"] == "done", state.get("stop_reason")
    assert state["node_log"] == ["ingest", "plan", "code", "reproduce", "grade", "report"]
    loop = state["loop"]
    assert (loop["exit"], loop["turn"], loop["tool_calls"], loop["malformed"]) == ("submitted", 8, 8, 0)
    assert loop["smoke"]["passed"] and loop["smoke"]["how"] == "job smoke"
    # the agent's own code is the submission; the failed smoke run and the fix are in the trajectory
    sub = cfg.run_dir / "submission"
    assert sorted(p.name for p in sub.iterdir()) == ["reproduce.sh", "train.py"]
    assert "len(test)" in (sub / "train.py").read_text() and "tset" not in (sub / "train.py").read_text()
    turns = [json.loads(p.read_text()) for p in sorted((cfg.run_dir / "trajectory").glob("*.json"))]
    smoke = turns[3]["results"][0]
    assert smoke["name"] == "bash" and not smoke["ok"] and "NameError" in smoke["content"]
    assert "[exit code 1" in smoke["content"]
    # a snapshot per file-changing step: the buggy and the fixed train.py are both kept
    steps = {p.stem: json.loads(p.read_text())["files"] for p in (cfg.run_dir / "steps").glob("*.json")}
    assert steps["0002"]["train.py"] != steps["0005"]["train.py"]
    # the reproduction re-ran reproduce.sh from the submission alone and its numbers are in the report
    rep = _report(cfg)
    head = next(r for r in rep["comparison"] if r["experiment_id"] == "head" and r["experiment"] != "Before fine-tuning")
    assert head["reported"]["value"] == TABLE1["head"] and head["reproduced"]["file"] == "reproduction/results/head/metrics.json"
    assert 0.6 < head["reproduced"]["value"] < 0.9  # naive Bayes on these snippets
    status = {e["id"]: e for e in rep["experiments"]}
    # head's status follows from the checks that compare it with the paper, not from its file
    head_parts = [p for c in rep["grade"]["checks"] for p in c.get("parts") or [c] if p["experiment"] == "head"]
    assert head_parts, rep["grade"]["checks"]
    want = "replicated" if all(p["passed"] for p in head_parts) else "results differ"
    assert status["head"]["status"] == want, (status["head"], head_parts)
    assert status["lora"]["status"] == status["full"]["status"] == "not attempted"
    assert "did not implement" in status["lora"]["reason"]
    assert {f["path"]: f["origin"] for f in rep["agent"]["files"]} == {
        "reproduce.sh": "written by the model", "train.py": "written by the model"}
    assert [s["tool"] for s in rep["agent"]["steps"]] == ["paper_table", "write_file", "write_file", "bash", "edit_file",
                                                         "start_job", "wait_job", "submit"]
    # the numeric leaves are decided by arithmetic (the demo rubric's sidecar), the judge's "pass" aside
    checks = {c["requirements"][:30]: c for c in rep["grade"]["checks"]}
    assert len(checks) == 6
    head_close = checks["The head-only model's accuracy"]
    assert not head_close["passed"] and head_close["difference"] > 3  # naive Bayes is not a fine-tuned head
    assert f"|{head_close['reproduced']:.4g} - {TABLE1['head']:g}|" in head_close["arithmetic"]
    assert checks["The measured accuracy before f"]["passed"]  # the majority baseline is near chance
    assert "no results file" in checks["The LoRA model's accuracy afte"]["arithmetic"]
    graded = {leaf["requirements"][:30]: leaf for leaf in _leaves(rep["graded_tree"])}
    assert graded["The head-only model's accuracy"]["score"] == 0.0  # the scripted judge said pass to everything
    assert rep["grade"]["parts"]["checked"] == {"leaves": 6, "passed": 1, "inconclusive": 0, "valid": 6,
                                                "rate": pytest.approx(1 / 9, abs=0.01)}
    assert "Result checks: 1/6 pass. Judged part:" in rep["verdict"], rep["verdict"]
    assert "accuracy never measured" in rep["verdict"]  # the scripted judge has no measurement


@pytest.mark.parametrize("budgets,model_name,expect", [
    (Budgets(max_model_tokens=50), "scripted", "model token budget exceeded"),
    (Budgets(max_dollars=0.0001, prices={"gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10)}), "gpt-4o",
     "dollar budget exceeded"),
    (Budgets(max_dollars=0.0001, prices={}), "mystery-model", "dollar budget exceeded"),
    (Budgets(max_wall_s=0.0), "scripted", "wall-time budget exceeded"),
])
def test_a_run_budget_spent_in_planning_stops_before_the_code(tmp_path, script_file, budgets, model_name, expect):
    cfg = _cfg(tmp_path, budgets=budgets)
    model = FileScriptedModel(script_file)
    model.name = model_name
    state = execute_run(cfg, model=model)
    assert state["status"] == "stopped" and expect in state["stop_reason"]
    assert state["node_log"] == ["ingest", "plan", "stop", "report"]
    rep = _report(cfg)
    assert rep["status"] == "stopped" and expect in rep["stop_reason"] and expect in rep["verdict"]
    assert rep["grade"] is None  # no code exists yet: nothing to grade, and the report says why


@pytest.mark.parametrize("budgets,exit_,turns", [
    (Budgets(max_steps=3), "steps", 3),
    (Budgets(max_agent_s=0.0), "time", 0),
])
def test_a_loop_budget_ends_the_loop_with_a_graded_partial_submission(tmp_path, script_file, budgets, exit_, turns):
    cfg = _cfg(tmp_path, budgets=budgets)
    state, _ = _run(cfg, script_file)
    loop = state["loop"]
    assert loop["exit"] == exit_ and loop["turn"] == turns
    assert state["node_log"][-4:] == ["code", "reproduce", "grade", "report"]  # exits lead to grading
    rep = _report(cfg)
    assert rep["grade"] is not None and rep["agent"]["exit"] == exit_
    if turns == 3:  # the agent wrote train.py and reproduce.sh: they are the submission, re-run and graded
        assert sorted(p.name for p in (cfg.run_dir / "submission").iterdir()) == ["reproduce.sh", "train.py"]
        assert rep["reproduction"]["start_time"] and not rep["reproduction"]["ok"]  # the bug is still there
        assert "reproduction" in {e["reason"].split()[1] for e in rep["experiments"]}


@pytest.mark.parametrize("kind", ["tokens", "dollars"])
def test_a_token_or_dollar_budget_spent_inside_the_loop_stops_it_there(tmp_path, script_file, kind):
    full, _ = _run(_cfg(tmp_path / "a"), script_file)
    tokens = lambda u: u["prompt_tokens"] + u["completion_tokens"]  # noqa: E731
    # enough for planning and half the loop: the loop must stop part-way, on that budget
    limit = tokens(full["usage"]) + tokens(full["loop"]["usage"]) // 2
    price = Price(input_per_mtok=1_000_000.0, output_per_mtok=1_000_000.0)  # a dollar a token
    budgets = (Budgets(max_model_tokens=limit) if kind == "tokens"
               else Budgets(max_dollars=float(limit), prices={"scripted": price}))
    cfg = _cfg(tmp_path / "b", budgets=budgets)
    state, _ = _run(cfg, script_file)
    loop = state["loop"]
    assert loop["exit"] == kind and 0 < loop["turn"] < 8, loop
    assert f"{'model token' if kind == 'tokens' else 'dollar'} budget exceeded" in loop["exit_detail"]
    rep = _report(cfg)
    assert rep["grade"] is not None and rep["agent"]["exit"] == kind
    if kind == "dollars":  # the stop and the report's cost come from one price table
        assert rep["cost"]["dollars"] >= float(limit)


def test_too_many_malformed_replies_end_the_loop(tmp_path):
    bad = [{"last": "", "calls": [{"tool": "fly", "args": {}}, {"tool": "bash", "args": {"cmd": "ls"}},
                                  {"tool": "write_file", "raw": "{not json"}]}]
    rules = [{"match": "Step 1 of 2", "reply": {"nope": 1}}, {"match": "Step 2 of 2", "reply": {"nope": 1}},
             *bad, {"match": "", "verdicts": 1}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "scripted", "rules": rules}))
    cfg = _cfg(tmp_path, budgets=Budgets(max_malformed_in_row=3))
    state, _ = _run(cfg, path)
    loop = state["loop"]
    assert loop["exit"] == "malformed" and loop["turn"] == 3 and loop["malformed"] == 9
    turn = json.loads((cfg.run_dir / "trajectory" / "0002.json").read_text())
    contents = [r["content"] for r in turn["results"]]
    assert "there is no tool named 'fly'" in contents[0]
    assert "bad arguments for bash" in contents[1] and "command" in contents[1]
    assert "not valid JSON" in contents[2]
    # a re-ask after an unusable reply is sampled, not greedy: the same prompt would give the same reply
    temps = [json.loads((cfg.run_dir / "trajectory" / f"{n:04d}.json").read_text())["temperature"] for n in (1, 2, 3)]
    assert temps == [0.0, REASK_TEMPERATURE, REASK_TEMPERATURE] and REASK_TEMPERATURE > 0
    assert state["node_log"][-3:] == ["reproduce", "grade", "report"]


def test_review_gate_pauses_and_resumes_with_feedback_edit_approve(tmp_path, script_file):
    cfg = _cfg(tmp_path, review=True)
    model = FileScriptedModel(script_file)
    state = execute_run(cfg, model=model)
    assert state["status"] == "paused" and state["node_log"] == ["ingest", "plan"]
    pending = review_store.read_pending(cfg.run_dir)
    assert pending["stage"] == "plan" and pending["round"] == 1 and pending["plan"]["experiments"]
    assert "+++ b/plan.json" in pending["diff"]

    # resuming without a decision stays paused and asks nobody
    calls = model.calls
    assert execute_run(cfg, resume=True, model=model)["status"] == "paused"
    assert model.calls == calls
    with pytest.raises(ValueError, match="waits for a plan review"):
        review_store.write_decision(cfg.run_dir, {"stage": "code", "action": "approve"})

    review_store.write_decision(cfg.run_dir, {"stage": "plan", "action": "feedback", "text": "also try full"})
    state = execute_run(cfg, resume=True, model=model)
    assert model.calls == calls + 2  # re-planned with the feedback (both model-asked planning stages)
    assert "also try full" in model.last_text
    assert state["status"] == "paused" and review_store.read_pending(cfg.run_dir)["round"] == 2

    plan = review_store.read_pending(cfg.run_dir)["plan"]
    plan["hyper"]["epochs"] = 2
    review_store.write_decision(cfg.run_dir, {"stage": "plan", "action": "edit", "plan": plan})
    state = execute_run(cfg, resume=True, model=model)
    assert state["status"] == "paused" and state["plan"]["hyper"]["epochs"] == 2
    pending = review_store.read_pending(cfg.run_dir)
    assert pending["stage"] == "code" and pending["files"] == ["reproduce.sh", "train.py"]
    assert "+++ b/submission/train.py" in pending["diff"]  # the code the agent wrote, as a diff

    # feedback on the code goes back into the tool loop as the agent's next message
    review_store.write_decision(cfg.run_dir, {"stage": "code", "action": "feedback", "text": "print the seed too"})
    feedback_rule = {"last": "", "calls": [{"tool": "submit", "args": {"note": "seed printed"}}]}
    spec = json.loads(script_file.read_text())
    spec["rules"].insert(len(spec["rules"]) - 1, feedback_rule)
    script_file.write_text(json.dumps(spec))
    model = FileScriptedModel(script_file)
    state = execute_run(cfg, resume=True, model=model)
    assert state["status"] == "paused" and state["loop"]["turn"] == 9
    assert "print the seed too" in model.last_text
    turn9 = json.loads((cfg.run_dir / "trajectory" / "0009.json").read_text())
    assert any("print the seed too" in n for n in turn9["notes"])

    review_store.write_decision(cfg.run_dir, {"stage": "code", "action": "edit",
                                              "files": {"reproduce.sh": REPRODUCE.replace("head", "head  # reviewed")}})
    state = execute_run(cfg, resume=True, model=model)
    assert state["status"] == "done"
    assert "# reviewed" in (cfg.run_dir / "submission" / "reproduce.sh").read_text()
    assert [h["action"] for h in state["review"]["history"]] == ["feedback", "edit", "feedback", "edit"]
    assert state["node_log"] == ["ingest", "plan", "review_plan", "plan", "review_plan", "code", "review_code", "code",
                                 "review_code", "reproduce", "grade", "report"]
    origins = {f["path"]: f["origin"] for f in _report(cfg)["agent"]["files"]}
    assert origins["reproduce.sh"] == "edited by a reviewer" and origins["train.py"] == "written by the model"
    assert review_store.read_pending(cfg.run_dir) is None
    assert len(list((cfg.run_dir / "review" / "history").glob("*.json"))) == 4


def test_decisions_are_validated(tmp_path):
    with pytest.raises(ValueError):
        review_store.ReviewDecision.model_validate({"stage": "plan", "action": "feedback", "text": " "})
    with pytest.raises(ValueError):
        review_store.ReviewDecision.model_validate({"stage": "code", "action": "edit", "files": {"../x": "y"}})
    with pytest.raises(ValueError, match="not waiting"):
        review_store.write_decision(tmp_path, {"stage": "plan", "action": "approve"})


def test_metrics_written_by_hand_without_training_get_no_result_credit(tmp_path):
    """The agent writes a metrics file itself and a reproduce.sh that only copies it (keeping its
    old time stamp): the reproduction's start-marker rule ignores it, every Result Analysis leaf
    is 0 whatever the judge says, and the report says why."""
    forged = json.dumps({"metrics": {"accuracy": 0.99}, "before": {"accuracy": 0.5}})
    copy = "#!/usr/bin/env bash\nset -e\ncd \"$(dirname \"$0\")\"\nmkdir -p results/head\ncp -p fake/metrics.json results/head/\n"
    rules = [{"match": "Step 1 of 2", "reply": {"x": 1}}, {"match": "Step 2 of 2", "reply": {"x": 1}},
             {"last": "Replicate \"", "calls": [{"tool": "write_file", "args": {"path": "fake/metrics.json",
                                                                                "content": forged}}]},
             {"last": "wrote fake/metrics.json", "calls": [{"tool": "write_file", "args": {"path": "reproduce.sh",
                                                                                          "content": copy}}]},
             {"last": "wrote reproduce.sh", "calls": [{"tool": "bash", "args": {"command": "REPRO_SMOKE=1 bash reproduce.sh"}}]},
             {"last": "[exit code 0", "calls": [{"tool": "submit", "args": {"note": "done"}}]},
             {"match": "", "verdicts": 1}]  # a judge that would pass anything it is shown
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "scripted", "rules": rules}))
    cfg = _cfg(tmp_path)
    state, _ = _run(cfg, path)
    assert state["loop"]["exit"] == "submitted"
    rep = _report(cfg)
    assert rep["reproduction"]["ok"] and rep["reproduction"]["results"] == {}
    assert any("written before the reproduction started" in n for n in rep["reproduction"]["ignored"])
    assert rep["grade"]["by_category"]["Result Analysis"] == 0.0
    assert rep["grade"]["by_category"]["Code Development"] == 1.0
    head = next(e for e in rep["experiments"] if e["id"] == "head")
    assert head["status"] == "failed" and "written before the reproduction started" in head["reason"]


SEEDED_TRAIN = """import json, os, sys
seed = int(os.environ["REPRO_SEED"])
acc = {SPREAD}[seed - 42]
os.makedirs("results/head", exist_ok=True)
json.dump({"metrics": {"accuracy": acc}, "before": {"accuracy": 0.49}}, open("results/head/metrics.json", "w"))
"""


@pytest.mark.parametrize("spread,verdict", [([0.709, 0.710, 0.708], "replicated"),
                                            ([0.60, 0.601, 0.599], "not replicated"),
                                            ([0.55, 0.86, 0.71], "inconclusive")])
def test_seeds_rerun_the_reproduction_and_give_each_claim_a_verdict(tmp_path, spread, verdict):
    code = SEEDED_TRAIN.replace("{SPREAD}", repr(spread))
    rules = [{"match": "Step 1 of 2", "reply": {"x": 1}}, {"match": "Step 2 of 2", "reply": {"x": 1}},
             {"last": "Replicate \"", "calls": [{"tool": "write_file", "args": {"path": "train.py", "content": code}}]},
             {"last": "wrote train.py", "calls": [{"tool": "write_file", "args": {
                 "path": "reproduce.sh", "content": "cd \"$(dirname \"$0\")\"\npython train.py\n"}}]},
             {"last": "wrote reproduce.sh", "calls": [{"tool": "bash", "args": {
                 "command": "REPRO_SMOKE=1 REPRO_SEED=42 bash reproduce.sh"}}]},
             {"last": "[exit code 0", "calls": [{"tool": "submit", "args": {"note": "done"}}]},
             {"match": "", "verdicts": 1}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "scripted", "rules": rules}))
    cfg = _cfg(tmp_path, seeds=3)
    state, _ = _run(cfg, path)
    assert state["status"] == "done"
    seeds = json.loads((cfg.run_dir / "reproduction.json").read_text())["seed_runs"]
    assert sorted(seeds) == ["42", "43", "44"]
    assert [seeds[s]["results"]["head"]["metrics"]["accuracy"] for s in ("42", "43", "44")] == spread
    rep = _report(cfg)
    head = next(c for c in rep["claims"] if c["experiment"] == "head" and "Classifier head" in c["claim"])
    assert head["n"] == 3 and head["verdict"] == verdict, head["why"]
    assert head["mean"] == pytest.approx(100 * sum(spread) / 3)
    row = next(r for r in rep["comparison"] if r["experiment_id"] == "head" and r["experiment"] != "Before fine-tuning")
    assert row["reproduced"]["interval"]["n"] == 3
    html = (cfg.run_dir / "report.html").read_text()
    assert "Claims across seeds" in html and verdict in html


def test_a_defect_in_a_node_ends_in_a_report_not_a_traceback(tmp_path, script_file, monkeypatch):
    """An unexpected exception inside a node (a bug of ours, not a typed failure) still ends the run
    with a report that says where and what, the traceback kept in logs/error.txt, and RunFailed."""
    import agent.graph
    from agent.runner import RunFailed

    def broken_plan(state, runtime):
        raise TypeError("claims_schema() got an unexpected keyword argument 'max_experiments'")

    monkeypatch.setattr(agent.graph, "plan", broken_plan)
    cfg = _cfg(tmp_path)
    with pytest.raises(RunFailed, match=r"internal error in node 'plan': TypeError: claims_schema\(\)"):
        _run(cfg, script_file)
    rep = _report(cfg)
    assert rep["status"] == "failed" and "internal error in node 'plan'" in rep["stop_reason"], rep["stop_reason"]
    assert "TypeError" in (cfg.run_dir / "logs" / "error.txt").read_text()
    assert json.loads((cfg.run_dir / "failure.json").read_text())["resume"] == "repro run --resume t1"
