"""Kill-and-resume harness (hostile cases C01, C03, C04, C06, C10): a child `repro run` with a
file-scripted model is SIGKILLed at a chosen point, `repro run --resume` finishes it.

Each resumed run must reach the same final report as an uninterrupted one, without redoing
the agent-model calls of finished nodes and, when killed while grading, paying only for the
judge groups not yet cached.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "agent"))
from conftest import JUDGE_RULE, PLAN_RULES, script  # noqa: E402


def _env(script_path: Path, hang: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REPRO_MODEL")}
    env["REPRO_SCRIPTED_MODEL"] = str(script_path)
    env.pop("REPRO_TEST_HANG_AT", None)
    if hang:
        env["REPRO_TEST_HANG_AT"] = hang
    return env


def _cmd(runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "run", *extra, "--sandbox", "fake", "--train-limit", "32",
            "--epochs", "1", "--runs-dir", str(runs)]


def _calls(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


# Timestamps and durations, and the judge's accounting: a resumed run pays for (and so counts)
# only the judge groups not cached before the kill; scores and explanations must be identical.
_VOLATILE = re.compile(r"time|duration|wall_s|^at$|started|generated|summary|^judge_(usage|tokens|calls|metadata)$")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not _VOLATILE.search(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _normalised_report(run_dir: Path) -> dict:
    """The report minus timestamps/durations (the only things a replay may change) and the run id."""
    r = json.loads((run_dir / "report.json").read_text())
    r.pop("run_id", None)
    return _strip(json.loads(json.dumps(r).replace(run_dir.name, "RUN")))


def _run_to_end(tmp: Path, name: str, fail_first: int = 0) -> tuple[Path, list[dict]]:
    runs, log = tmp / name, tmp / f"{name}.jsonl"
    sp = tmp / f"{name}.json"
    sp.write_text(json.dumps(script(log, fail_first=fail_first)))
    proc = subprocess.run(_cmd(runs, str(DEMO)), env=_env(sp), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir, _calls(log)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    run_dir, calls = _run_to_end(tmp, "base")
    return run_dir, calls


def test_replay_is_deterministic_C10(baseline, tmp_path):
    run_dir, calls = baseline
    again, calls2 = _run_to_end(tmp_path, "again")
    assert _normalised_report(again) == _normalised_report(run_dir)
    assert [c["rule"] for c in calls2] == [c["rule"] for c in calls]
    for rel in ("submission/train.py", "submission/reproduce.sh", "plan.json", "plan/stage-1-claims.json",
                "plan/stage-2-experiments.json", "plan/stage-3-implementation.json"):
        assert (again / rel).read_text() == (run_dir / rel).read_text()


@pytest.mark.parametrize("spot", ["node:implement", "node:execute", "node:grade", "grade:partial", "node:report"])
def test_sigkill_then_resume_gives_the_same_report_C01_C03_C04(baseline, tmp_path, spot):
    base_dir, base_calls = baseline
    runs, log = tmp_path / "runs", tmp_path / "calls.jsonl"
    sp = tmp_path / "script.json"
    sp.write_text(json.dumps(script(log)))
    child = subprocess.Popen(_cmd(runs, str(DEMO)), env=_env(sp, spot), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    marker = None
    while time.time() < deadline and child.poll() is None:
        found = list(runs.glob("*/hang.marker")) if runs.exists() else []
        if found:
            marker = found[0]
            break
        time.sleep(0.2)
    assert marker is not None, f"child never reached {spot}: {child.stderr.read().decode()[-2000:] if child.poll() is not None else ''}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    run_dir = marker.parent
    killed_calls = _calls(log)
    assert not (run_dir / "report.json").exists() or spot == "node:report"
    # C03: the checkpoint database survives a SIGKILL intact
    with sqlite3.connect(run_dir / "checkpoints.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    marker.unlink()

    proc = subprocess.run(_cmd(runs, "--resume", run_dir.name), env=_env(sp), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed_calls = _calls(log)[len(killed_calls):]
    assert _normalised_report(run_dir) == _normalised_report(base_dir)

    # No finished node is redone: the agent model's calls happen once over both processes,
    # and the judge pays only for groups that were not yet cached (C04).
    def count(calls, rule):
        return sum(1 for c in calls if c["rule"] == rule)

    for rule in PLAN_RULES:  # each planning stage asked once
        assert count(killed_calls, rule) + count(resumed_calls, rule) == count(base_calls, rule) == 1
    judge_base = count(base_calls, JUDGE_RULE)
    assert count(killed_calls, JUDGE_RULE) + count(resumed_calls, JUDGE_RULE) == judge_base
    if spot == "grade:partial":
        assert (count(killed_calls, JUDGE_RULE) >= 1
                and count(resumed_calls, JUDGE_RULE) == judge_base - count(killed_calls, JUDGE_RULE))
    state_log = json.loads((run_dir / "report.json").read_text())
    assert state_log["status"] == "done"


def test_model_outage_fails_cleanly_then_resume_finishes_C06(baseline, tmp_path):
    """Five scripted 503s: the run stops with a clear failure and a partial report; --resume finishes."""
    base_dir, _ = baseline
    runs, log = tmp_path / "runs", tmp_path / "calls.jsonl"
    sp = tmp_path / "script.json"
    sp.write_text(json.dumps(script(log, fail_first=1)))
    proc = subprocess.run(_cmd(runs, str(DEMO)), env=_env(sp), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "scripted 503" in proc.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "failure.json").read_text())["resume"].startswith("repro run --resume")
    assert json.loads((run_dir / "report.json").read_text())["status"] == "failed"
    sp.write_text(json.dumps(script(log)))
    proc = subprocess.run(_cmd(runs, "--resume", run_dir.name), env=_env(sp), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _normalised_report(run_dir) == _normalised_report(base_dir)


@pytest.mark.docker
def test_sigkill_during_a_real_sandbox_exec_then_resume_C02(tmp_path, docker_engine):
    """Killed while reproduce.sh runs in a real container: resume reaps the orphan, re-runs the
    reproduction in a fresh container and finishes; no container of the run is left."""
    from sandbox.policy import LABEL_ROLE, LABEL_RUN_ID

    runs, log = tmp_path / "runs", tmp_path / "calls.jsonl"
    sp = tmp_path / "script.json"
    sp.write_text(json.dumps(script(log)))
    cmd = [c if c != "fake" else "docker" for c in _cmd(runs, str(DEMO))]  # the real engine

    def containers(run_id: str, role: str | None = None) -> list[str]:
        flt = ["--filter", f"label={LABEL_RUN_ID}={run_id}"] + (["--filter", f"label={LABEL_ROLE}={role}"] if role else [])
        out = subprocess.run(["docker", "ps", "-aq", *flt], capture_output=True, text=True, check=True).stdout
        return out.split()

    child = subprocess.Popen(cmd, env=_env(sp), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    run_id, deadline = None, time.time() + 600
    while time.time() < deadline and child.poll() is None:
        dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
        if dirs and containers(dirs[0].name, "reproduce"):
            run_id = dirs[0].name
            break
        time.sleep(0.5)
    assert run_id, f"no reproduction container appeared: {child.stderr.read().decode()[-2000:] if child.poll() is not None else ''}"
    time.sleep(2)  # reproduce.sh is running inside it now
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert containers(run_id, "reproduce")  # the orphan outlives the killed process...

    resume = [c if c != "fake" else "docker" for c in _cmd(runs, "--resume", run_id)]
    proc = subprocess.run(resume, env=_env(sp), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((runs / run_id / "report.json").read_text())
    assert report["status"] == "done"
    for method in ("head", "lora", "full"):
        assert (runs / run_id / "reproduction" / "results" / method / "metrics.json").is_file()
    assert containers(run_id) == []  # ...and resume leaves nothing behind
