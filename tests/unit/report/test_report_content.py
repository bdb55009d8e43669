import json
import re

import pytest

from graders.citations import cited, evidence_files, json_key_line, matched


def test_report_has_every_element(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    data = json.loads((d / "report.json").read_text())
    html = (d / "report.html").read_text()
    # reported vs reproduced, with provenance on both sides
    rows = {(c["experiment_id"], c["experiment"]): c for c in data["comparison"]}
    row = rows[("lora", "LoRA")]
    assert row["reported"]["page"] == 1 and row["reported"]["value"] == 81.2
    assert row["reproduced"]["file"] == "reproduction/results/lora/metrics.json"
    assert row["reproduced"]["key"] == "metrics.accuracy"
    lines = (d / row["reproduced"]["file"]).read_text().splitlines()
    assert '"accuracy": 0.8' in lines[row["reproduced"]["line"] - 1]
    assert lines[row["reproduced"]["line"] - 2].strip() == '"metrics": {'
    assert abs(row["delta"] - (80.0 - 81.2)) < 1e-9
    assert "#page=1" in html and f'{row["reproduced"]["file"]}:{row["reproduced"]["line"]}' in html
    before = rows[("lora", "Before fine-tuning")]
    assert before["reported"]["value"] == 49.0 and before["reproduced"]["display"] == 50.0
    assert rows[("full", "Full fine-tuning")]["reproduced"] is None  # planned, not reproduced: still a row
    # every planned experiment, replicated or not, with the reason
    status = {e["id"]: e for e in data["experiments"]}
    # a results file is not a replication: no check compares LoRA's number on this scaled-down setup
    assert status["lora"]["status"] == "ran, no comparable target"
    assert "no check or claim compares" in status["lora"]["reason"]
    assert status["full"]["status"] == "not attempted" and "did not implement" in status["full"]["reason"]
    # before/after, deviations, curves (a real PNG), cost, environment
    assert data["before_after"] == [{"method": "LoRA", "metric": "accuracy", "before": 0.5, "after": 0.8,
                                     "trainable_params": 1000, "total_params": 50000, "train_seconds": 3.0,
                                     "samples": None}]
    assert "scaled-down run" in html
    assert data["curves"]["loss"]["lora"] == [[0, 0.7], [5, 0.5], [10, 0.3]]
    assert re.search(r'src="data:image/png;base64,iVBOR', html)
    assert data["cost"]["sandbox_s"] == 8.0 and data["cost"]["smoke_s"] == 4.0
    assert data["cost"]["judge_tokens"] == 1100
    assert data["cost"]["dollars"] == 0.0 and "local model" in data["cost"]["price_note"]  # embedded: free
    assert data["environment"]["python"] and "torch" in data["environment"]
    # the rubric: collapsible, every leaf with a verdict and its evidence
    assert html.count('<details class="leaf"') == 4
    ev = data["evidence"]["leaf-lora"][0]
    assert (ev["file"], ev["start"], ev["end"], ev["kind"]) == ("submission/train.py", 10, 11, "cited")
    assert "lora_r = 8" in ev["excerpt"]
    assert data["evidence"]["leaf-acc"][0]["file"] == "reproduction/results/lora/metrics.json"


def test_report_has_the_coding_agent(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    a = json.loads((d / "report.json").read_text())["agent"]
    html = (d / "report.html").read_text()
    assert (a["turns"], a["tool_calls"], a["guided"], a["exit"]) == (4, 6, 0, "submitted")
    # turn 3's menu was narrowed to two tools: a real choice, so every call is the model's
    assert (a["guide_calls"], a["model_calls"], a["decided"]) == (0, 6, "the model chose all 6 tool calls")
    assert {f["path"]: f["origin"] for f in a["files"]} == {"reproduce.sh": "written by the model",
                                                           "train.py": "written by the model"}
    assert [(s["turn"], s["tool"], s["ok"]) for s in a["steps"]] == [
        (1, "write_file", True), (2, "bash", False), (3, "edit_file", True), (3, "write_file", True),
        (4, "bash", True), (4, "submit", True)]
    assert a["steps"][2]["changes"]["changed"] == ["train.py"] and a["steps"][2]["guide"] == fx.GUIDE
    assert a["steps"][1]["result"].startswith("epoch 0 step 0/30 loss 0.70 <unk>")
    assert json.loads(a["steps"][1]["args"]) == {"command": "REPRO_SMOKE=1 python train.py", "timeout": 120}
    # the trajectory table in the standalone report: no web view to link to
    assert 'id="trajectory"' in html and "step by step with diffs" not in html
    assert "Guided run" not in " ".join(json.loads((d / "report.json").read_text())["warnings"])
    assert "Who decided: the model chose all 6 tool calls" in html


def test_cited_forms_and_unknown_files(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    files = evidence_files(d)
    assert "logs/embedded-llm.log" not in files
    got = [(e["file"], e["start"], e["end"]) for e in cited(
        "see train.py line 3 and reproduce.sh#L2, also nothere.py:4 and train.py:9999", None, files)]
    assert got == [("submission/train.py", 3, 3), ("submission/reproduce.sh", 2, 2),
                   ("submission/train.py", 13, 13)]  # clamped to the file's last line
    meta = {"citations": [{"file": "train.py", "lines": [9, 10]}]}
    assert cited("", meta, files)[0]["start"] == 9


def test_matched_points_at_code_for_code_criteria(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    m = matched("Code fixes the random seed 42", "Code Development", evidence_files(d))
    assert m and m[0]["file"] == "submission/train.py" and m[0]["kind"] == "matched"
    assert "SEED = 42" in m[0]["excerpt"]
    assert matched("zzz qqq", "Code Development", evidence_files(d)) == []


def test_json_key_line(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"before": {"accuracy": 0.1}, "after": {"accuracy": 0.9}}, indent=2))
    assert p.read_text().splitlines()[json_key_line(p, "after.accuracy") - 1].strip() == '"accuracy": 0.9'
    assert json_key_line(p, "after.f1") is None


def test_failed_run_without_grade_still_renders(tmp_path, fx):
    from graders.report import write_report

    data = {"run_id": "x", "status": "failed", "stop_reason": "SandboxError: no docker", "verdict": "Not graded",
            "warnings": [], "paper": {"title": "T", "link": "file:///p.pdf", "source": "p.pdf"},
            "models": {"agent": "a", "judge": "j"}, "comparison": [], "before_after": [], "deviations": [],
            "grade": None, "graded_tree": None, "cost": {}, "environment": {}}
    write_report(data, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "SandboxError: no docker" in html and "Not graded." in html


def test_dollars_for_priced_and_unknown_models(tmp_path, monkeypatch):
    from agent.config import ModelConfig, RunConfig
    from agent.nodes.report import cost_summary

    monkeypatch.delenv("REPRO_PRICE_PER_MTOK", raising=False)
    api = ModelConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:1/v1")
    cfg = RunConfig(run_id="r", runs_dir=tmp_path, paper_path=tmp_path / "p.pdf", agent_model=api, judge_model=api)
    u = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    c = cost_summary(u, u, {"agent": "gpt-4o-mini", "judge": "gpt-4o-mini"}, cfg, {}, {}, None)
    assert c["dollars"] == 2 * (0.15 + 0.60)
    c = cost_summary(u, u, {"agent": "mystery", "judge": "gpt-4o-mini"}, cfg, {}, {}, None)
    # an unknown model is charged at the budget's unknown-model rate (the same as the budget stop), and said so
    unknown = cfg.budgets.unknown_price
    assert c["dollars"] == pytest.approx(unknown.input_per_mtok + unknown.output_per_mtok + 0.15 + 0.60)
    assert "no price known for 'mystery'" in c["price_note"]
