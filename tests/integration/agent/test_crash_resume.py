"""Kill-and-resume harness (hostile cases C01, C03, C04, C06, C10): a child `repro run` with a
file-scripted model is SIGKILLed at a chosen point — between nodes, in the middle of the coding
agent's tool loop, while a job runs, while grading — and `repro run --resume` finishes it.

Each resumed run must reach the same final report as an uninterrupted one, without redoing the
agent-model calls of finished steps (planning stages, loop turns) and, when killed while grading,
paying only for the judge groups not yet cached. The loop's workspace runs on the local backend
here (fast, real processes); tests/integration/agent/test_loop_docker.py does it with Docker.
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
from conftest import JUDGE_RULE, LOOP_RULES, PLAN_RULES, script  # noqa: E402

LOOP_RULE_IDS = range(PLAN_RULES[-1] + 1, PLAN_RULES[-1] + 1 + len(LOOP_RULES))


def _env(script_path: Path, hang: str | None = None, mark: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REPRO_MODEL")}
    env["REPRO_SCRIPTED_MODEL"] = str(script_path)
    for var, value in (("REPRO_TEST_HANG_AT", hang), ("REPRO_TEST_MARK_AT", mark)):
        env.pop(var, None)
        if value:
            env[var] = value
    return env


def _cmd(runs: Path, *extra: str, sandbox: str = "local") -> list[str]:
    return [sys.executable, "-m", "agent.cli", "run", *extra, "--sandbox", sandbox, "--guide", "off",
            "--runs-dir", str(runs)]


def _calls(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


# What truly differs between two runs of the same script: clocks and durations, the judge's
# accounting after a resume (only uncached groups are paid), where the run directory is, and the
# agent's token count (its prompts carry those durations and paths: a scripted model counts chars).
_VOLATILE = {"cost.wall_s", "cost.sandbox_s", "cost.smoke_s", "cost.reproduce_s", "cost.judge_tokens",
             "cost.judge_calls", "reproduction.start_time", "reproduction.duration_s", "reproduction.summary",
             "grade.judge_usage", "cost.agent_tokens", "agent.tokens", "agent.tokens_per_turn"}
# the judge's bookkeeping on a rubric node: a verdict read from the cache says so and has no attempts
_JUDGE_BOOKKEEPING = {"cached", "attempts", "calls", "cache_hits", "prompt_tokens", "completion_tokens"}
# in a step's printed output: durations ("after 0.11 s") and a job log's start stamp
_DURATION = re.compile(r"\b\d+(?:\.\d+)? ?s\b|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _strip(obj, path: str = ""):
    if isinstance(obj, dict):
        bookkeeping = _JUDGE_BOOKKEEPING if path.startswith("graded_tree") and path.endswith("judge_metadata") else ()
        return {k: _strip(v, f"{path}.{k}" if path else k) for k, v in obj.items()
                if (f"{path}.{k}" if path else k) not in _VOLATILE and k not in bookkeeping}
    if isinstance(obj, list):
        if path == "agent.steps":  # each step's duration, and durations printed in its output
            return [{**{k: v for k, v in st.items() if k != "seconds"}, "result": _stable(st)} for st in obj]
        return [_strip(v, path) for v in obj]
    return obj


def _stable(step: dict) -> str:
    """A step's output minus what timing decides: durations, and the state a job has reached by
    the instant start_job reports it (running, or already done on an idle machine)."""
    text = step["result"]
    if step["tool"] == "start_job":
        text = text.split("\n", 1)[0]
    return _DURATION.sub("N", text)


def _normalised_report(run_dir: Path) -> dict:
    """The report minus what a replay may change (above), with the run's own paths made neutral."""
    text = (run_dir / "report.json").read_text().replace(str(run_dir.parent), "RUNS").replace(run_dir.name, "RUN")
    r = json.loads(text)
    r.pop("run_id", None)
    return _strip(r)


def _first_difference(a, b, path: str = "") -> str:
    """Where two reports part (assertion messages on nested dicts say too little)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {str(a)[:300]!r} != {str(b)[:300]!r}"


def _assert_same_report(a: Path, b: Path) -> None:
    got, want = _normalised_report(a), _normalised_report(b)
    assert got == want, _first_difference(got, want)


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
    _assert_same_report(again, run_dir)
    assert [c["rule"] for c in calls2] == [c["rule"] for c in calls]
    for rel in ("submission/train.py", "submission/reproduce.sh", "plan.json", "plan/stage-1-claims.json",
                "plan/stage-2-experiments.json"):
        assert (again / rel).read_text() == (run_dir / rel).read_text()
    # the same trajectory: every turn's calls and (durations aside) every result
    for a, b in zip(sorted((again / "trajectory").glob("*.json")), sorted((run_dir / "trajectory").glob("*.json"))):
        ta, tb = json.loads(a.read_text()), json.loads(b.read_text())
        assert [c["name"] for c in ta["reply"]["calls"]] == [c["name"] for c in tb["reply"]["calls"]]
        assert [r["ok"] for r in ta["results"]] == [r["ok"] for r in tb["results"]]


@pytest.mark.parametrize("spot", ["node:plan", "node:code", "tool:edit_file", "tool:submit", "node:grade",
                                  "grade:partial", "node:report"])
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
    _assert_same_report(run_dir, base_dir)

    # No finished node is redone: the agent model's calls happen once over both processes,
    # and the judge pays only for groups that were not yet cached (C04).
    def count(calls, rule):
        return sum(1 for c in calls if c["rule"] == rule)

    for rule in PLAN_RULES:  # each planning stage asked once
        assert count(killed_calls, rule) + count(resumed_calls, rule) == count(base_calls, rule) == 1
    for rule in LOOP_RULE_IDS:  # each loop turn's model call made once, killed mid-tool or not
        assert count(killed_calls, rule) + count(resumed_calls, rule) == count(base_calls, rule) == 1, rule
    judge_base = count(base_calls, JUDGE_RULE)
    assert count(killed_calls, JUDGE_RULE) + count(resumed_calls, JUDGE_RULE) == judge_base
    if spot == "grade:partial":
        assert (count(killed_calls, JUDGE_RULE) >= 1
                and count(resumed_calls, JUDGE_RULE) == judge_base - count(killed_calls, JUDGE_RULE))
    state_log = json.loads((run_dir / "report.json").read_text())
    assert state_log["status"] == "done"


def _slow_smoke_script(log: Path) -> dict:
    """The baseline session, but the smoke job takes a few seconds: long enough to be killed mid-wait."""
    spec = script(log)
    for rule in spec["rules"]:
        for c in rule.get("calls", []):
            if c["tool"] == "start_job":
                c["args"]["command"] = "sleep 4; REPRO_SMOKE=1 bash reproduce.sh"
    return spec


def _slow_reproduction_script(log: Path) -> dict:
    """The baseline session, but the full reproduce.sh (not its smoke run) takes seconds: long
    enough to be killed while its container runs."""
    spec = script(log)
    for rule in spec["rules"]:
        for c in rule.get("calls", []):
            if c["tool"] == "write_file" and c["args"]["path"] == "reproduce.sh":
                c["args"]["content"] = c["args"]["content"].replace(
                    "python train.py", 'if [ -z "${REPRO_SMOKE:-}" ]; then sleep 20; fi\npython train.py')
    return spec


def test_sigkill_during_wait_job_reattaches_the_job_never_restarts_it(baseline, tmp_path):
    """Killed while wait_job waits on a running training job: the job lives on in the workspace;
    --resume re-attaches to it (its log shows one start) and the run ends as an uninterrupted one."""
    base_dir, _ = baseline
    runs, log = tmp_path / "runs", tmp_path / "calls.jsonl"
    sp = tmp_path / "script.json"
    sp.write_text(json.dumps(_slow_smoke_script(log)))
    child = subprocess.Popen(_cmd(runs, str(DEMO)), env=_env(sp, mark="tool:wait_job"), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline, marker = time.time() + 240, None
    while time.time() < deadline and child.poll() is None and marker is None:
        marker = next(iter(runs.glob("*/mark.marker")), None) if runs.exists() else None
        time.sleep(0.1)
    assert marker is not None, child.stderr.read().decode()[-2000:] if child.poll() is not None else "no marker"
    time.sleep(1.0)  # wait_job is blocking on the job now
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    run_dir = marker.parent
    job = run_dir / "workspace" / ".repro" / "jobs" / "smoke"
    assert not (job / "exit_code").exists()  # the job was still running when its run died
    proc = subprocess.run(_cmd(runs, "--resume", run_dir.name), env=_env(sp), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (job / "log").read_text().count("[job smoke started") == 1  # re-attached, never restarted
    report = json.loads((run_dir / "report.json").read_text())
    base = json.loads((base_dir / "report.json").read_text())
    assert report["status"] == "done" and report["agent"]["exit"] == "submitted"
    got, want = (json.loads((d / "reproduction.json").read_text())["results"]["head"] for d in (run_dir, base_dir))
    assert got["metrics"] == want["metrics"] and got["before"] == want["before"]
    assert [s["tool"] for s in report["agent"]["steps"]] == [s["tool"] for s in base["agent"]["steps"]]
    waits = [s for s in report["agent"]["steps"] if s["tool"] == "wait_job"]
    assert len(waits) == 1 and "succeeded" in waits[0]["result"]


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
    _assert_same_report(run_dir, base_dir)


@pytest.mark.docker
def test_sigkill_during_a_real_sandbox_exec_then_resume_C02(tmp_path, docker_engine):
    """Killed while reproduce.sh runs in a real container: resume reaps the orphan, re-runs the
    reproduction in a fresh container and finishes; no container of the run is left."""
    from sandbox.docker import list_ours
    from sandbox.policy import LABEL_ROLE

    runs, log = tmp_path / "runs", tmp_path / "calls.jsonl"
    sp = tmp_path / "script.json"
    sp.write_text(json.dumps(_slow_reproduction_script(log)))
    cmd = _cmd(runs, str(DEMO), sandbox="docker")  # the real engine

    def containers(run_id: str, role: str | None = None) -> list[str]:
        # through the SDK (as the product does): a `docker` client on PATH may be another version
        found, _ = list_ours(run_id)
        return [c.name for c in found if role is None or (c.labels or {}).get(LABEL_ROLE) == role]

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

    resume = _cmd(runs, "--resume", run_id, sandbox="docker")
    proc = subprocess.run(resume, env=_env(sp), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((runs / run_id / "report.json").read_text())
    assert report["status"] == "done"
    assert (runs / run_id / "reproduction" / "results" / "head" / "metrics.json").is_file()
    assert containers(run_id) == []  # ...and resume leaves nothing behind
