"""The whole slice on real parts: paper PDF → plan → the tool loop in the Docker workspace →
fresh-container reproduction → judge → report. The models are scripted (they fail loudly when
their script runs out); the sandbox, the training code and the grading arithmetic are real.

The agent here plays the embedded model's part on the guided path that `make demo` takes: each
turn it calls the one tool the guide's narrowed menu offers, with the values the menu allows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import RunConfig
from agent.llm import ScriptedChatModel
from agent.runner import execute_run
from graders.aggregate import aggregate
from graders.rubric import load_graded
from agent.config import ModelConfig
from agent.llm import Completion, ScriptExhausted, ToolCall, Usage

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "papers" / "demo-minilm-sentiment"
CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e1"


# The two model-asked planning stages (claims, then per-experiment settings).
PLAN = [{"experiments": [{"name": "Classifier head only", "method": "train only the head", "recipe": "head",
                          "claim": "the head alone helps", "results": ["none"]}]},
        {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
         "dataset": "movie review snippets", "experiments": [
             {"experiment": "E1", "epochs": 1, "batch_size": 32, "learning_rate": 0.002, "metrics": ["accuracy"],
              "targets": []}]}]


class MenuFollower(ScriptedChatModel):
    """Planning from the script; in the tool loop, the first tool of the offered menu with the first
    allowed value of each narrowed argument — what a weak model constrained by the guide can do.
    At most ``turns`` loop turns: one more raises (a loop that never ends fails loudly)."""

    def __init__(self, script, turns: int, name: str = "scripted-agent"):
        super().__init__(script, name=name)
        self.turns = turns

    def complete(self, messages, *, schema=None, tools=None, **kw):
        if tools is None:
            return super().complete(messages, schema=schema, **kw)
        self.requests.append({"messages": messages, "tools": tools})
        self.turns -= 1
        if self.turns < 0:
            raise ScriptExhausted("the guided loop asked for more turns than the demo path needs")
        t = tools[0]
        props = t["parameters"]["properties"]
        args = {k: v["enum"][0] for k, v in props.items() if "enum" in v}
        if t["name"] == "submit":
            args["note"] = "scaffolded the recipes of the plan; smoke run passed"
        return Completion(text="", tool_calls=[ToolCall(f"c{len(self.requests)}", t["name"], args)],
                          usage=Usage(100, 10), model=self.name)


def judge_script(n: int):
    """A judge that passes odd-numbered criteria and fails even ones, for any grouping."""
    def answer(messages, schema):
        keys = schema["properties"]["verdicts"]["items"]["properties"]["key"]["enum"]
        return {"verdicts": [{"key": k, "explanation": f"checked {k}", "score": int(k[1:]) % 2} for k in keys]}
    return [answer] * n


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, docker_engine):
    runs = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", CANARY)  # a secret in the host environment must reach nothing
    cfg = RunConfig(run_id="pipeline-test", runs_dir=runs, paper_path=DEMO / "paper.pdf",
                    rubric_path=DEMO / "rubric.json", train_limit=48, epochs=1, guide="on",
                    agent_model=ModelConfig(model="scripted", base_url="http://127.0.0.1:9/v1"))
    agent = MenuFollower(list(PLAN), turns=6)  # scaffold x3, start the smoke job, wait for it, submit
    judge = ScriptedChatModel(judge_script(40), name="scripted-judge")
    try:
        state = execute_run(cfg, model=agent, judge_model=judge)
    finally:
        mp.undo()
    return cfg.run_dir, state, agent, judge


def test_run_finishes_with_code_reproduction_and_report(finished_run):
    run_dir, state, agent, _ = finished_run
    assert state["status"] == "done", state.get("stop_reason")
    assert state["loop"]["exit"] == "submitted" and state["loop"]["guided"] == 6
    assert [list(r) for r in agent.requests[:2]] == [["messages", "schema", "tools", "temperature"]] * 2  # planning, then the loop
    for f in ("train.py", "reproduce.sh", "README.md"):
        assert (run_dir / "submission" / f).is_file()
    for f in ("report.html", "report.md", "report.json", "graded.json", "plan.json", "paper.json"):
        assert (run_dir / f).is_file(), f


def test_every_reported_method_is_replicated_in_the_fresh_container(finished_run):
    run_dir, *_ = finished_run
    plan = json.loads((run_dir / "plan.json").read_text())["plan"]
    # the model asked for 'head' only; the paper reports LoRA and full fine-tuning too
    assert [e["id"] for e in plan["experiments"]] == ["head", "lora", "full"]
    for method in ("head", "lora", "full"):
        metrics = json.loads((run_dir / "reproduction" / "results" / method / "metrics.json").read_text())
        assert 0.0 <= metrics["before"]["accuracy"] <= 1.0
        assert 0.0 <= metrics["metrics"]["accuracy"] <= 1.0
        assert metrics["n_train"] == 48
    report = json.loads((run_dir / "report.json").read_text())
    origins = {f["path"]: f["origin"] for f in report["agent"]["files"]}
    assert origins["train.py"].startswith("scaffold") and origins["reproduce.sh"].startswith("scaffold")
    assert any("Guided run" in w for w in report["warnings"])
    # the menu-follower completes the demo: every call was the guide's, and the report says so
    assert (report["agent"]["guide_calls"], report["agent"]["model_calls"]) == (6, 0)
    assert report["agent"]["decided"].startswith("the guide decided 6 of 6 tool calls")
    assert {s["options"] for s in report["agent"]["steps"]} == {1}
    assert "Who decided: the guide decided 6 of 6" in (run_dir / "report.html").read_text()


def test_report_numbers_come_from_the_files_they_cite(finished_run):
    run_dir, *_ = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    paper = json.loads((run_dir / "paper.json").read_text())
    printed = {(r["row"], r["column"]): r["value"] for r in paper["results"]}
    rows = [r for r in report["comparison"] if r.get("reproduced")]
    assert len(rows) >= 3
    for row in rows:
        rep = row["reproduced"]
        data = json.loads((run_dir / rep["file"]).read_text())
        value = data
        for part in rep["key"].split("."):
            value = value[part]
        assert value == pytest.approx(rep["value"])
        if row.get("reported"):
            ref = row["reported"]
            assert printed[(ref["row"], ref["column"])] == pytest.approx(ref["value"])


def test_score_is_the_aggregate_of_the_judges_verdicts(finished_run):
    run_dir, _, _, judge = finished_run
    graded = load_graded(run_dir / "graded.json")
    agg = aggregate(graded)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["grade"]["score"] == pytest.approx(agg.score)
    assert 0.0 < agg.score < 1.0  # odd criteria passed, even failed: neither all nor nothing
    assert judge.requests, "the judge was never asked"
    # rubric text reaches the judge; it never reaches the sandbox (the submission holds no rubric)
    assert not list((run_dir / "submission").rglob("rubric*.json"))


def test_no_secret_and_no_container_is_left_behind(finished_run):
    run_dir, *_ = finished_run
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"secret leaked into {path}"
    from sandbox.docker import list_ours

    assert list_ours("pipeline-test") == ([], [])  # workspace and reproduction containers and volumes
