"""The CLI as a newcomer meets it: checks before a run exists (exit 2, nothing left behind),
`repro runs`, `repro review` (also after a decision made in the web UI) and `repro serve`."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"


def _run(args: list[str], env: dict | None = None):
    # a wide terminal: the CLI wraps its messages at the terminal's width, and a long tmp path would
    # otherwise cut a phrase the test looks for in two
    return CliRunner().invoke(app, args, env={"COLUMNS": "400", **(env or {})})


@pytest.mark.parametrize("what,args,expect", [
    ("not a pdf", ["README.md"], "not a PDF"),
    ("dead endpoint", [str(DEMO), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], "does not answer"),
    ("no engine", [str(DEMO), "--sandbox", "docker"], "sandbox:"),
])
def test_run_checks_before_a_run_directory_exists(tmp_path, what, args, expect, monkeypatch):
    runs = tmp_path / "runs"
    if what == "no engine":  # an engine address where nothing answers (a socket path that does not exist)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
        import sandbox.docker as dk

        monkeypatch.setattr(dk, "_client", None)
    argv = ["run", *[str(ROOT / a) if a == "README.md" else a for a in args], "--runs-dir", str(runs)]
    r = _run(argv, env={"REPRO_SCRIPTED_MODEL": ""} if what != "dead endpoint" else None)
    assert r.exit_code == 2, r.output
    assert expect in r.output and "nothing was created" in r.output
    assert "--resume" not in r.output
    assert not runs.exists() or not any(runs.iterdir())  # no run directory, nothing to resume


def test_a_truncated_pdf_is_called_damaged_not_a_scan(tmp_path):
    bad = tmp_path / "cut.pdf"
    bad.write_bytes(DEMO.read_bytes()[: DEMO.stat().st_size // 2])
    r = _run(["run", str(bad), "--runs-dir", str(tmp_path / "runs"), "--sandbox", "local"])
    assert r.exit_code == 2 and "damaged or truncated" in r.output and "--ocr" not in r.output
    assert not (tmp_path / "runs").exists()


def test_too_little_disk_is_refused(tmp_path, monkeypatch):
    from agent import preflight

    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 1 << 60)
    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(tmp_path / "unused.json"))
    r = _run(["run", str(DEMO), "--runs-dir", str(tmp_path / "runs"), "--sandbox", "local"])
    assert r.exit_code == 2 and "disk:" in r.output and "GiB free" in r.output


def test_runs_lists_started_runs_only(tmp_path, fx):
    fx.finished_run(tmp_path)
    never = tmp_path / "never-started"
    never.mkdir()
    (never / "run.json").write_text((tmp_path / "demo-finished" / "run.json").read_text())
    r = _run(["runs", "--runs-dir", str(tmp_path), "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert [row["run_id"] for row in rows] == ["demo-finished"]
    assert rows[0]["status"] == "done" and rows[0]["score"] == pytest.approx(0.5)
    table = _run(["runs", "--runs-dir", str(tmp_path)])
    assert "demo-finished" in table.stdout and "never-started" not in table.stdout


def test_review_approves_a_real_pause_and_resumes_it(tmp_path, fx, monkeypatch):
    d = fx.paused_run(tmp_path)
    script = tmp_path / ".scripts" / "demo-paused.json"
    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(script))  # the resumed run's model, as a child would get it
    shown = _run(["review", d.name, "--runs-dir", str(tmp_path), "--show"])
    assert shown.exit_code == 0 and "plan review, round 1" in shown.output and "head (" in shown.output
    r = _run(["review", d.name, "--runs-dir", str(tmp_path), "--approve"])
    assert r.exit_code == 0, r.output
    assert "paused for a code review" in r.output  # resumed: the agent coded, and the next gate waits
    pending = json.loads((d / "review" / "pending.json").read_text())
    assert pending["stage"] == "code" and "train.py" in pending["files"]


def test_review_resumes_with_a_decision_already_made_in_the_web_ui(tmp_path, fx, monkeypatch):
    from agent import review_store

    d = fx.paused_run(tmp_path)
    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(tmp_path / ".scripts" / "demo-paused.json"))
    review_store.record_decision(d, "approve", who="ana")  # what the web UI's button writes
    r = _run(["review", d.name, "--runs-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "already answered (approve by ana)" in r.output and "paused for a code review" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_loopback_with_the_runs(tmp_path, fx):
    fx.finished_run(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--runs-dir", str(tmp_path), "--port",
                             str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(0.3)
        assert body is not None and [r["run_id"] for r in body] == ["demo-finished"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs/demo-finished/trajectory", timeout=5) as resp:
            assert resp.status == 200 and b"Trajectory" in resp.read()
        # loopback only: the server is not listening on any other address
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert listening and all(" 127.0.0.1:" in ln for ln in listening.strip().splitlines())
    finally:
        proc.terminate()
        proc.wait(10)
