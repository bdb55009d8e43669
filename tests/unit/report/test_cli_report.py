import json
import os
import time

from typer.testing import CliRunner

from agent.cli import app
from graders.overrides import add_override
from graders.rubric import load_graded


def test_report_formats_and_rerender_after_an_override(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    r = CliRunner().invoke(app, ["report", d.name, "--runs-dir", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["grade"]["score"] == 0.5
    # an override written by another tool (the web UI, by hand) after the report: `repro report` catches up
    add_override(d, load_graded(d / "graded.json"), "leaf-seed", 1.0, "seed on line 3", "ana")
    past = time.time() - 100
    for f in ("report.json", "report.md", "report.html"):
        os.utime(d / f, (past, past))
    r = CliRunner().invoke(app, ["report", d.name, "--runs-dir", str(tmp_path), "--format", "md"])
    assert r.exit_code == 0 and "Replication score 0.75" in r.stdout
    r = CliRunner().invoke(app, ["report", d.name, "--runs-dir", str(tmp_path)])
    assert r.exit_code == 0 and r.stdout.strip().endswith("report.html")
    bad = CliRunner().invoke(app, ["report", d.name, "--runs-dir", str(tmp_path), "--format", "pdf"])
    assert bad.exit_code != 0
    missing = CliRunner().invoke(app, ["report", "nope", "--runs-dir", str(tmp_path)])
    assert missing.exit_code == 2
