"""The web app through its ASGI interface (no browser): routes, actions, errors, safety."""
import json

import pytest
from fastapi.testclient import TestClient

from agent import review_store
from agent.web.app import create_app


@pytest.fixture
def client(runs_dir):
    return TestClient(create_app(runs_dir), base_url="http://127.0.0.1:8765")


def test_runs_list_shows_each_status_and_score(client):
    html = client.get("/").text
    assert "demo-finished" in html and "0.50" in html
    assert "paused for review" in html and "running" in html
    rows = {r["run_id"]: r for r in client.get("/api/runs").json()}
    assert rows["demo-paused"]["status"] == "paused for review"
    assert rows["demo-running"]["progress"]["done"] == ["ingest", "plan"]
    assert rows["demo-running"]["progress"]["current"] == "implement"
    assert rows["demo-running"]["progress"]["log_tail"][-1] == "epoch 0 step 4/10 loss 0.5"


def test_override_via_form_updates_page_and_report_json(client, runs_dir):
    r = client.post("/runs/demo-finished/override", data={"leaf_id": "leaf-seed", "score": "1",
                                                          "reason": "seed set on line 3", "who": "ana"})
    assert r.status_code == 200 and "score now 0.75" in r.text
    assert json.loads((runs_dir / "demo-finished" / "report.json").read_text())["grade"]["score"] == 0.75
    rows = {x["run_id"]: x for x in client.get("/api/runs").json()}
    assert rows["demo-finished"]["score"] == 0.75 and rows["demo-finished"]["overridden"] == 1


def test_override_without_reason_is_refused_with_a_message(client, runs_dir):
    r = client.post("/runs/demo-finished/override", data={"leaf_id": "leaf-seed", "score": "1", "reason": ""})
    assert "Grade not changed" in r.text and "reason" in r.text
    assert not (runs_dir / "demo-finished" / "overrides.json").exists()


def test_approve_and_feedback(client, runs_dir):
    d = runs_dir / "demo-paused"
    assert "Waiting for your review" in client.get("/runs/demo-paused").text
    r = client.post("/runs/demo-paused/review", data={"action": "feedback", "feedback": ""})
    assert "feedback is empty" in r.text and review_store.pending_review(d)
    r = client.post("/runs/demo-paused/review", data={"action": "approve", "who": "bo"})
    assert "Approved by bo" in r.text
    assert json.loads((d / "review" / "decision.json").read_text())["action"] == "approve"


def test_cross_site_post_and_foreign_host_are_refused(client, runs_dir):
    r = client.post("/runs/demo-paused/review", data={"action": "approve"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and review_store.pending_review(runs_dir / "demo-paused")
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_code_browser_comments_and_traversal(client):
    html = client.get("/runs/demo-finished/files/submission/train.py?lines=10-11").text
    assert 'id="L10" class="hl"' in html and 'id="L11" class="hl"' in html
    assert 'data-leaf="leaf-lora"' in html and "sets lora_r = 8" in html
    assert '<span class="k">def</span>' in html  # pygments highlighting
    for bad in ("/runs/demo-finished/files/../run.json", "/runs/demo-finished/files/%2e%2e/run.json",
                "/runs/demo-finished/files/checkpoints.sqlite", "/runs/..%2f/files/x"):
        r = client.get(bad)
        assert r.status_code == 404 and "Traceback" not in r.text


def test_diff_plan_paper_and_errors(client):
    diff = client.get("/runs/demo-finished/diff").text
    assert "as implemented → final submission" in diff and '<span class="add">+    acc = 0.8</span>' in diff
    assert "define acc before printing it" in diff
    assert "scaled-down run" in client.get("/runs/demo-finished/plan").text
    assert client.get("/runs/demo-finished/paper").headers["content-type"] == "application/pdf"
    r = client.get("/runs/nope")
    assert r.status_code == 404 and "No such run" in r.text
    assert client.get("/nothing/here").status_code == 404


def test_a_crash_is_a_page_not_a_trace(runs_dir):
    (runs_dir / "demo-finished" / "report.json").write_text("{not json")
    c = TestClient(create_app(runs_dir), base_url="http://127.0.0.1", raise_server_exceptions=False)
    r = c.get("/runs/demo-finished")
    assert r.status_code == 200 and "is not valid JSON" in r.text  # said plainly, page still usable
    (runs_dir / "demo-finished" / "plan.json").write_text('{"plan": {"experiments": 5}}')
    r = c.get("/runs/demo-finished/plan")
    assert r.status_code == 500 and "Something went wrong" in r.text and "Traceback" not in r.text
