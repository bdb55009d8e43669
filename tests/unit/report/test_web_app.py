"""The web app through its ASGI interface (no browser): routes, actions, errors, safety.

demo-paused is a real pause of the runner (fixture_run.paused_run): the review tests answer it
through the app and resume it with agent.runner.execute_run, as `repro run --resume` does.
"""
import json
import re

import pytest
from fastapi.testclient import TestClient

from agent import review_store
from agent.web import runs
from agent.web.app import WebLinks, create_app
from papers.demo import table1


def session_token(client: TestClient) -> str:
    """The CSRF token of the client's session, as the app's own pages carry it in every form."""
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/new").text)
    assert m, "the form page carries no session token"
    return m.group(1)


class PageClient(TestClient):
    """A browser-like client: its form posts carry the session token the pages give it."""

    def post(self, url, *a, data=None, **kw):
        if isinstance(data, dict) and "csrf_token" not in data and not kw.pop("no_token", False):
            data = {**data, "csrf_token": session_token(self)}
        return super().post(url, *a, data=data, **kw)


@pytest.fixture
def client(runs_dir):
    return PageClient(create_app(runs_dir, start_runs=False), base_url="http://127.0.0.1:8765")


def test_runs_list_shows_each_status_and_score(client):
    html = client.get("/").text
    assert "demo-finished" in html and "0.50" in html
    assert "paused for review" in html and "running" in html
    rows = {r["run_id"]: r for r in client.get("/api/runs").json()}
    assert rows["demo-paused"]["status"] == "paused for review"
    # no report yet: the title ingest read from the demo paper's PDF
    assert rows["demo-paused"]["paper"].startswith("Head, LoRA or Full?")
    assert rows["demo-paused"]["progress"]["review"]["stage"] == "plan"
    assert "plan" not in rows["demo-paused"]["progress"]["review"]  # the polled progress stays small
    running = rows["demo-running"]["progress"]
    assert running["steps"] == ["ingest", "plan", "code", "reproduce", "grade", "report"]
    assert running["done"] == ["ingest", "plan"] and running["current"] == "code"
    assert running["loop"] is None  # the coding agent has not started
    assert running["log_tail"][-1] == "epoch 0 step 4/10 loss 0.5"
    assert "2/6 steps · now code" in html


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


def test_the_paused_page_shows_what_the_runner_asks(client, runs_dir):
    html = client.get("/runs/demo-paused").text
    pending = review_store.read_pending(runs_dir / "demo-paused")
    assert "Waiting for your review: plan" in html and "(round 1)" in html
    for e in pending["plan"]["experiments"]:  # the plan the runner paused on, experiment by experiment
        assert f"<code>{e['id']}</code> {e['name']}" in html
    assert '<span class="ctx">+++ b/plan.json</span>' in html  # the pause's diff, escaped and coloured
    plan = client.get("/runs/demo-paused/plan").text
    assert 'data-experiment="head"' in plan and f"{table1()['head']:g}" in plan and "Waiting for your review: plan" in plan


def test_approve_is_the_decision_the_runner_resumes_with(client, fx, runs_dir):
    d = runs_dir / "demo-paused"
    pending = review_store.read_pending(d)
    r = client.post("/runs/demo-paused/review", data={"action": "feedback", "feedback": ""})
    assert "feedback is empty" in r.text and review_store.pending_review(d)
    r = client.post("/runs/demo-paused/review", data={"action": "approve", "who": "bo"})
    assert "Approved by bo" in r.text and "repro run --resume demo-paused" in r.text
    decision = json.loads((d / "review" / "decision.json").read_text())
    assert (decision["stage"], decision["action"], decision["round"], decision["request_id"]) == \
        ("plan", "approve", 1, pending["id"])
    # answered but not resumed: the page says so and how to resume
    assert runs.status_of(d) == "waiting to resume"
    html = client.get("/runs/demo-paused").text
    assert 'id="answered"' in html and "repro run --resume demo-paused" in html and 'id="review"' not in html

    state = fx.resume_run(runs_dir, "demo-paused")
    # the runner consumed exactly the web's decision and went on to write the code
    history = json.loads((d / "review" / "history" / "000.json").read_text())
    assert history["decision"]["who"] == "bo" and history["decision"]["action"] == "approve"
    assert history["request"]["id"] == pending["id"]
    assert state["node_log"] == ["ingest", "plan", "review_plan", "code"]
    assert state["status"] == "paused" and state["loop"]["exit"] == "submitted"
    nxt = review_store.pending_review(d)
    assert nxt["stage"] == "code" and nxt["files"] == ["reproduce.sh", "train.py"]

    html = client.get("/runs/demo-paused").text
    assert "Waiting for your review: code" in html and 'id="answered"' not in html
    assert '/runs/demo-paused/files/submission/train.py"' in html
    p = client.get("/api/runs/demo-paused/progress").json()
    assert p["status"] == "paused for review" and p["done"] == ["ingest", "plan", "code"]
    assert (p["loop"]["turn"], p["loop"]["tool_calls"], p["loop"]["exit"]) == (8, 8, "submitted")
    assert "coding agent: turn 8, 8 tool calls, loop ended: submitted" in html
    assert "3/6 steps · now reproduce · turn 8" in client.get("/").text
    # the coding session the runner recorded, turn by turn, with the fix as a diff
    traj = client.get("/runs/demo-paused/trajectory").text
    assert all(f'id="turn-{n}"' in traj for n in range(1, 9)) and 'id="turn-9"' not in traj
    fix = traj.split('id="turn-5"')[1].split("<section")[0]
    assert '<code class="tool">edit_file</code>' in fix and "against step 4" in fix
    assert '<span class="del">-accuracy = sum(predict(w) == y for w, y in test) / len(tset)</span>' in fix
    assert '<span class="add">+accuracy = sum(predict(w) == y for w, y in test) / len(test)</span>' in fix
    smoke = traj.split('id="turn-4"')[1].split("<section")[0]
    assert "NameError" in smoke
    # its whole output, copied from the workspace when the loop ended, one click away
    (log,) = re.findall(r'<a class="full-log" href="([^"]+)">full log</a>', smoke)
    assert log.startswith("/runs/demo-paused/files/logs/workspace/logs/t0004-")
    assert "NameError: name &#x27;tset&#x27; is not defined" in client.get(log).text

    # approving the code too: the run completes with a report whose trajectory link is the web view
    client.post("/runs/demo-paused/review", data={"action": "approve", "who": "bo"})
    state = fx.resume_run(runs_dir, "demo-paused")
    assert state["status"] == "done"
    assert state["node_log"][-5:] == ["code", "review_code", "reproduce", "grade", "report"]
    assert runs.status_of(d) == "done" and review_store.read_pending(d) is None
    html = client.get("/runs/demo-paused").text
    assert 'href="/runs/demo-paused/trajectory">step by step with diffs</a>' in html
    assert "step by step with diffs" not in (d / "report.html").read_text()  # standalone: no web view


def test_feedback_from_the_web_reaches_the_planner(client, fx, runs_dir):
    d = runs_dir / "demo-paused"
    r = client.post("/runs/demo-paused/review", data={"action": "feedback", "feedback": "also try 3 epochs",
                                                      "who": ""})
    assert "Feedback sent by " in r.text  # no name given: the default reviewer, never an empty one
    assert json.loads((d / "review" / "decision.json").read_text())["who"]
    model = fx.scripted_model(runs_dir, "demo-paused")
    from agent.runner import execute_run, load_run_config

    state = execute_run(load_run_config("demo-paused", runs_dir), resume=True, model=model)
    assert "also try 3 epochs" in model.last_text  # the re-plan was asked with the web's text
    assert state["node_log"] == ["ingest", "plan", "review_plan", "plan"]
    assert review_store.pending_review(d)["round"] == 2
    assert "(round 2)" in client.get("/runs/demo-paused").text


def test_progress_follows_the_loop_while_it_runs(fx, tmp_path):
    """The loop checkpoints in its own namespace: progress reads its turn while it runs."""
    d = fx.paused_run(tmp_path, "live")
    review_store.record_decision(d, "approve", who="ana")
    seen = []

    def on_progress(event, **data):
        if event == "tool":
            p = runs.progress(d)
            seen.append((data["turn"], p["loop"]["turn"], p["current"], p["status"]))

    fx.resume_run(tmp_path, "live", progress=on_progress)
    assert [s[0] for s in seen] == list(range(1, 9))
    assert all(turn == loop_turn and current == "code" and status == "running"
               for turn, loop_turn, current, status in seen), seen
    p = runs.progress(d)
    assert p["loop"]["turn"] == 8 and p["current"] == "reproduce" and p["status"] == "paused for review"

    # feedback on the code: the loop runs again although "code" is in the node log already
    review_store.record_decision(d, "feedback", "print the seed too", who="ana")
    script = tmp_path / ".scripts" / "live.json"
    spec = json.loads(script.read_text())
    spec["rules"].insert(len(spec["rules"]) - 1, {"last": "", "calls": [{"tool": "submit", "args": {"note": "ok"}}]})
    script.write_text(json.dumps(spec))
    seen.clear()
    fx.resume_run(tmp_path, "live", progress=on_progress)
    assert seen == [(9, 9, "code", "running")]
    assert "code" in runs.progress(d)["done"]


def test_cross_site_post_and_foreign_host_are_refused(client, runs_dir):
    r = client.post("/runs/demo-paused/review", data={"action": "approve"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and review_store.pending_review(runs_dir / "demo-paused")
    assert not (runs_dir / "demo-paused" / "review" / "decision.json").exists()
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_code_browser_comments_and_traversal(client):
    html = client.get("/runs/demo-finished/files/submission/train.py?lines=10-11").text
    assert 'id="L10" class="hl"' in html and 'id="L11" class="hl"' in html
    assert 'data-leaf="leaf-lora"' in html and "sets lora_r = 8" in html
    assert '<span class="k">def</span>' in html  # pygments highlighting
    for bad in ("/runs/demo-finished/files/../run.json", "/runs/demo-finished/files/%2e%2e/run.json",
                "/runs/demo-finished/files/checkpoints.sqlite", "/runs/..%2f/files/x",
                "/runs/demo-finished/files/blobs"):
        r = client.get(bad)
        assert r.status_code == 404 and "Traceback" not in r.text


def test_trajectory_shows_every_turn_call_and_step_diff(client):
    html = client.get("/runs/demo-finished/trajectory").text
    assert 'class="on" id="tab-trajectory"' in html
    assert "4 turns, 6 tool calls, 2 step(s) that changed files" in html
    assert "The loop ended: <b>submitted</b> — LoRA with rank 8" in html
    for turn, calls in ((1, 1), (2, 1), (3, 2), (4, 2)):
        assert f'id="turn-{turn}"' in html
        assert f'id="call-{turn}-{calls}"' in html and f'id="call-{turn}-{calls + 1}"' not in html
    section = {n: html.split(f'id="turn-{n}"')[1].split("<section")[0] for n in (1, 2, 3, 4)}
    # arguments and outputs, escaped
    assert '<pre class="arg">REPRO_SMOKE=1 python train.py</pre>' in section[2]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section[2] and "<script>alert" not in html
    assert 'print(&#34;accuracy&#34;, acc)' in section[1]
    # the long smoke output is folded (preview + everything), the short ones are not
    assert section[2].count('<details class="fold out">') == 1 and "… 34 lines" in section[2]
    assert "NameError: name" in section[2].split('<pre class="full">')[1]
    assert "NameError: name" not in section[2].split('<pre class="full">')[0]  # not in the preview
    assert '<details class="fold' not in section[4] and "accuracy 0.8" in section[4]
    # the narrowed menu and the note shown to the model, on the guided turn only
    assert 'id="menu-3"' in section[3] and "reproduce.sh is missing" in section[3]
    assert "<code>write_file</code> <code>edit_file</code>" in section[3]
    assert html.count('class="menu"') == 1
    assert "Reminder: 2 of 60 turns used" in section[3]
    # the diff of each file-changing step, against the step before
    assert "against the empty workspace" in section[1] and '<span class="add">+    lora_r = 8</span>' in section[1]
    assert "against step 2" in section[3]
    assert '<span class="add">+    acc = 0.8</span>' in section[3]
    assert '<span class="del">-    print(&#34;accuracy&#34;, acc)  # bug: acc undefined</span>' in section[3]
    assert '<code>reproduce.sh</code> added' in section[3] and "not by this turn" not in section[3]
    assert 'class="step-diff"' not in section[2] and 'class="step-diff"' not in section[4]  # bash changed nothing
    assert "changed: <code>train.py</code>" in section[3]


def test_diff_redirects_to_the_file_changing_steps(client):
    r = client.get("/runs/demo-finished/diff", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/runs/demo-finished/trajectory?only=changes"
    html = client.get("/runs/demo-finished/diff").text
    assert 'id="turn-1"' in html and 'id="turn-3"' in html
    assert 'id="turn-2"' not in html and 'id="turn-4"' not in html
    assert 'id="show-all"' in html
    assert client.get("/runs/nope/diff", follow_redirects=False).status_code == 404


def test_report_links_to_the_trajectory(client, runs_dir):
    html = client.get("/runs/demo-finished").text
    assert 'href="/runs/demo-finished/trajectory">step by step with diffs</a>' in html
    assert "step by step with diffs" not in (runs_dir / "demo-finished" / "report.html").read_text()
    links = WebLinks("a b")
    assert links.trajectory() == "/runs/a%20b/trajectory" and links.trajectory(3) == "/runs/a%20b/trajectory#turn-3"


def test_trajectory_of_runs_without_a_loop(client):
    html = client.get("/runs/demo-paused/trajectory").text  # paused before any code
    assert 'id="no-trajectory"' in html and "has not taken a turn yet" in html
    assert 'id="no-trajectory"' in client.get("/runs/demo-running/trajectory?only=changes").text


def test_plan_paper_and_errors(client):
    plan = client.get("/runs/demo-finished/plan").text
    assert "scaled-down run" in plan
    assert 'data-experiment="lora"' in plan and 'data-experiment="full"' in plan
    assert "81.2 — <a href=\"/runs/demo-finished/paper#page=1\">Table 1, p. 1</a>" in plan
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
    (runs_dir / "demo-finished" / "trajectory" / "0002.json").write_text("{half a turn")
    r = c.get("/runs/demo-finished/trajectory")  # a torn file does not take the page down
    assert r.status_code == 200 and 'id="turn-3"' in r.text and 'id="turn-2"' not in r.text
    assert 'id="step-2"' not in r.text  # its step changed nothing: no empty section in its place
