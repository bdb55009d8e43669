"""CLI: mounted the way agent/cli.py mounts it."""
import json
from types import SimpleNamespace as NS

import typer
from typer.testing import CliRunner

from agent.llm import ScriptedChatModel
from graders import cli

app = typer.Typer()
app.add_typer(cli.rubric_app, name="rubric")
app.command("judge-eval")(cli.judge_eval_cmd)
runner = CliRunner()


def test_check_valid_and_invalid(tmp_path, fixtures_dir):
    ok = runner.invoke(app, ["rubric", "check", str(fixtures_dir / "tiny_rubric.json")])
    assert ok.exit_code == 0 and "5 leaves" in ok.output
    bad = json.loads((fixtures_dir / "tiny_rubric.json").read_text())
    bad["sub_tasks"][0]["weight"] = -2
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    res = runner.invoke(app, ["rubric", "check", str(p)])
    assert res.exit_code == 2 and "negative weight" in res.stderr and "'code'" in res.stderr


def test_score_json(fixtures_dir):
    res = runner.invoke(app, ["rubric", "score", str(fixtures_dir / "paperbench/judge_eval/semantic-self-consistency"
                                                      "/expected_result.json"), "--json"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert set(out) == {"score", "coverage", "leaves", "nodes"}
    assert abs(out["score"] - 0.91) < 1e-9 and out["leaves"] == 79 and out["nodes"] == 102


def test_show(fixtures_dir):
    res = runner.invoke(app, ["rubric", "show", str(fixtures_dir / "tiny_rubric.json")])
    assert res.exit_code == 0 and "AdamW" in res.output and "Result Analysis" in res.output


def test_judge_eval_baselines(fixtures_dir):
    data = str(fixtures_dir / "paperbench" / "judge_eval")
    res = runner.invoke(app, ["judge-eval", "--baseline", "oracle", "--data", data, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["mean_f1"] == 1.0
    res = runner.invoke(app, ["judge-eval", "--data", data])
    assert res.exit_code == 2


def test_generate_uses_registered_model(tmp_path, monkeypatch):
    import sys
    fake = NS(load_paper=lambda path: NS(title="T", abstract="", text=lambda n=None: "T uses SST-2.",
                                         results=[], hyperparameters=[]))
    monkeypatch.setitem(sys.modules, "papers.ingest", fake)
    cli.set_model_factory(None)
    assert runner.invoke(app, ["rubric", "generate", "x.pdf"]).exit_code == 2
    cli.set_model_factory(lambda: ScriptedChatModel([{"components": ["a thing"]}, {"datasets": ["SST-2"],
                                                                                     "models": []}]))
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["rubric", "generate", "x.pdf", "-o", str(out)])
    cli.set_model_factory(None)
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["rubric", "check", str(out)]).exit_code == 0
