"""`repro serve` runs what the browser submits: queued, run in the Docker sandbox, cancelled,
resumed after the server restarts. The scripted model drives the coding agent (no model server)."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from webserve import Serve, run_id_of, scripted_session  # noqa: E402

pytestmark = pytest.mark.docker


def _ours(run_id: str) -> list:
    from sandbox.docker import list_ours

    containers, volumes = list_ours(run_id)
    return containers + volumes


def _smoke_job_running(p: dict) -> bool:
    call = p.get("last_call") or {}
    return call.get("tool") == "start_job" or (call.get("tool") == "wait_job" and p["status"] == "running")


def test_a_restart_of_the_server_mid_run_resumes_the_run_from_its_checkpoint(tmp_path, docker_engine):
    runs = tmp_path / "runs"
    script = scripted_session(tmp_path / "script.json", smoke_sleep_s=10)
    serve = Serve(runs, script)
    try:
        run_id = run_id_of(serve.submit(train_limit="64"))
        mid = serve.wait(run_id, _smoke_job_running, timeout_s=300)
        assert mid["current"] == "code" and mid["queue"] == "running"
    finally:
        serve.stop(signal.SIGTERM)  # Ctrl-C: the run is interrupted, its checkpoint stays
    run_dir = runs / run_id
    assert json.loads((run_dir / "web.json").read_text())["state"] == "running"
    assert not (run_dir / "report.json").exists()
    events = (run_dir / "events.jsonl").read_text()
    assert "interrupted: the server is stopping" in events

    serve = Serve(runs, script)
    try:
        done = serve.wait(run_id, lambda p: p["status"] in ("done", "failed", "cancelled"), timeout_s=400)
    finally:
        serve.stop()
    assert done["status"] == "done", done
    report = json.loads((run_dir / "report.json").read_text())
    assert report["agent"]["exit"] == "submitted"
    lines = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    resumed = next(i for i, e in enumerate(lines) if e.get("detail") == "resumed from its checkpoint")
    # the resumed process never read or planned the paper again: it went on from the coding agent
    assert not [e for e in lines[resumed:] if e["event"] == "node" and e["name"] in ("ingest", "plan")]
    job_log = (run_dir / "logs" / "workspace" / "jobs" / "smoke" / "log").read_text()
    assert job_log.count("[job smoke started") == 1  # the smoke job kept running and was re-attached
    assert _ours(run_id) == []


def test_cancel_mid_run_removes_its_containers_and_writes_a_partial_report(tmp_path, docker_engine):
    runs = tmp_path / "runs"
    serve = Serve(runs, scripted_session(tmp_path / "script.json", smoke_sleep_s=30))
    try:
        first = run_id_of(serve.submit(train_limit="64"))
        second = run_id_of(serve.submit(train_limit="64"))  # one at a time: it waits behind the first
        assert serve.live(second)["queue"] == "queued"
        page = serve.client.get(f"/runs/{second}").text
        assert "#1 in the queue" in page
        serve.wait(first, _smoke_job_running)
        assert _ours(first), "the run's workspace container should be up"
        token = serve.token()
        r = serve.client.post(f"/runs/{first}/cancel", data={"csrf_token": token, "who": "ana"})
        assert r.status_code == 303 and "Cancelled+by+ana" in r.headers["location"].replace("%20", "+")
        ended = serve.wait(first, lambda p: p["status"] == "cancelled", timeout_s=60)
        assert ended["status"] == "cancelled"
        # the queue moves on: the second run starts once the first is gone
        serve.wait(second, _smoke_job_running, timeout_s=300)  # mid-way: its smoke job runs in its workspace
        assert _ours(second)
        r = serve.client.post(f"/runs/{second}/cancel", data={"csrf_token": token, "who": "bo"})
        assert r.status_code == 303
        serve.wait(second, lambda p: p["status"] == "cancelled", timeout_s=90)
    finally:
        serve.stop()
    for run_id, who in ((first, "ana"), (second, "bo")):
        report = json.loads((runs / run_id / "report.json").read_text())
        assert report["status"] == "cancelled" and report["stop_reason"] == f"cancelled from the browser by {who}"
        assert (runs / run_id / "report.html").exists()
        assert _ours(run_id) == []
    assert json.loads((runs / first / "web.json").read_text())["outcome"] == "cancelled"
