"""`repro run`: the judge is chosen apart from the agent — the embedded SmolLM2 with a remote agent,
or any other endpoint — and the runner opens that judge, not the agent's model."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import ModelConfig, RunConfig

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"
AGENT = ["--model", "qwen2.5-7b", "--base-url", "http://127.0.0.1:8000/v1"]


def _run(args: list[str], monkeypatch, tmp_path) -> tuple[object, list[RunConfig]]:
    """`repro run ARGS` up to the run itself: the preflight and the run are recorded, not done."""
    import agent.cli as cli
    import agent.preflight as preflight

    seen: list[RunConfig] = []
    monkeypatch.setattr(preflight, "preflight", lambda cfg, resume=False: seen.append(cfg) or [])
    monkeypatch.setattr(cli, "execute_run", lambda cfg, **kw: {"status": "done", "report": {"html": "report.html"}})
    for var in ("REPRO_MODEL", "OPENAI_BASE_URL", "REPRO_SCRIPTED_MODEL"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(app, ["run", str(DEMO), "--runs-dir", str(tmp_path / "runs"), "--sandbox", "local", *args],
                           env={"COLUMNS": "400"})
    return r, seen


@pytest.mark.parametrize("judge,expect", [
    (["--judge-model", "embedded"], ModelConfig()),
    (["--judge-model", "Embedded"], ModelConfig()),
    (["--judge-model", "o4-mini"], ModelConfig(model="o4-mini", base_url="http://127.0.0.1:8000/v1")),
    (["--judge-model", "llama3", "--judge-base-url", "http://127.0.0.1:11434/v1"],
     ModelConfig(model="llama3", base_url="http://127.0.0.1:11434/v1")),
    (["--judge-base-url", "http://127.0.0.1:9000/v1"], ModelConfig(model="qwen2.5-7b", base_url="http://127.0.0.1:9000/v1")),
    ([], ModelConfig(model="qwen2.5-7b", base_url="http://127.0.0.1:8000/v1")),
])
def test_the_judge_is_chosen_apart_from_the_agent(tmp_path, monkeypatch, judge, expect):
    r, seen = _run([*AGENT, *judge], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    (cfg,) = seen
    assert cfg.agent_model == ModelConfig(model="qwen2.5-7b", base_url="http://127.0.0.1:8000/v1")
    assert cfg.judge_model == expect
    assert cfg.judge_model.embedded is (expect == ModelConfig())


def test_an_embedded_judge_with_a_base_url_is_refused(tmp_path, monkeypatch):
    r, seen = _run([*AGENT, "--judge-model", "embedded", "--judge-base-url", "http://127.0.0.1:1/v1"],
                   monkeypatch, tmp_path)
    assert r.exit_code == 2 and "runs on this machine" in r.output and not seen
    assert not (tmp_path / "runs").exists()


def test_the_runner_opens_the_embedded_judge_beside_a_remote_agent(tmp_path, monkeypatch):
    import agent.runner as runner

    started = []

    class FakeServer:
        def __init__(self, **kw):
            started.append(kw)

        def start(self):
            return self

        def client(self):
            return "embedded-client"

        def stop(self):
            started.append("stopped")

    monkeypatch.setattr(runner, "EmbeddedServer", FakeServer)
    monkeypatch.delenv("REPRO_SCRIPTED_MODEL", raising=False)
    cfg = RunConfig(run_id="r", runs_dir=tmp_path, paper_path=DEMO,
                    agent_model=ModelConfig(model="qwen2.5-7b", base_url="http://127.0.0.1:8000/v1"),
                    judge_model=ModelConfig.for_judge(ModelConfig(model="qwen2.5-7b"), "embedded"))
    with runner.open_models(cfg) as (agent, judge):
        assert judge == "embedded-client" and getattr(agent, "name", None) == "qwen2.5-7b"
    assert len(started) == 2 and started[-1] == "stopped"  # one server, for the judge only, stopped with the run
