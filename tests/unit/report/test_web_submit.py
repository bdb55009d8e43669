"""Submitting a paper from the browser, through the app's ASGI interface: what is refused (and
says why, with nothing queued), what is stored and where, and the CSRF / same-origin guards on
every state-changing route. The scheduler is not started here (tests/integration/web runs it)."""
import html
import json
import re
from pathlib import Path

import pymupdf
import pytest
from fastapi.testclient import TestClient

from agent.web.app import create_app

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(tmp_path / "unused.json"))  # the only endpoint offered
    monkeypatch.setattr("agent.preflight.check_sandbox", lambda cfg: [])  # the engine is the docker tests' part
    return tmp_path / "runs"


@pytest.fixture
def client(runs):
    return TestClient(create_app(runs, start_runs=False), base_url=BASE, follow_redirects=False)


def token(client) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/new").text).group(1)


def submit(client, pdf: bytes, name: str = "paper.pdf", **fields):
    data = {"csrf_token": token(client), "endpoint": "scripted", **fields}
    return client.post("/new", data=data, files={"paper": (name, pdf, "application/pdf")})


def run_dirs(runs: Path) -> list[Path]:
    return [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.exists() else []


def encrypted(tmp_path, password="open-sesame") -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "An Encrypted Paper", fontsize=16)
    page.insert_text((72, 100), "\n".join("Body text about fine-tuning language models." for _ in range(30)))
    f = tmp_path / "enc.pdf"
    doc.save(f, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw="owner")
    return f.read_bytes()


def scanned(tmp_path) -> bytes:
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 200, 200), False)
    pix.clear_with(200)
    doc = pymupdf.open()
    for _ in range(2):
        doc.new_page().insert_image(pymupdf.Rect(50, 50, 400, 400), pixmap=pix)
    f = tmp_path / "scan.pdf"
    doc.save(f)
    return f.read_bytes()


@pytest.mark.parametrize("what", ["not a pdf", "encrypted", "wrong password", "scanned", "bad rubric", "bad numbers"])
def test_a_rejected_upload_says_why_on_the_form_and_queues_nothing(what, client, runs, tmp_path):
    fields, pdf, files = {}, DEMO.read_bytes(), None
    if what == "not a pdf":
        pdf = b"<html>this is a web page saved as .pdf</html>"
    elif what in ("encrypted", "wrong password"):
        pdf = encrypted(tmp_path)
        if what == "wrong password":
            fields["password"] = "guess"
    elif what == "scanned":
        pdf = scanned(tmp_path)
    elif what == "bad numbers":
        fields.update(train_limit="ten", seeds="99")
    if what == "bad rubric":
        data = {"csrf_token": token(client), "endpoint": "scripted"}
        r = client.post("/new", data=data, files={"paper": ("paper.pdf", pdf, "application/pdf"),
                                                  "rubric": ("rubric.json", b'{"id": "x"}', "application/json")})
    else:
        r = submit(client, pdf, **fields)
    assert r.status_code == 400
    problems = html.unescape(re.search(r'id="form-problems">(.*?)</div>', r.text, re.S).group(1))
    want = {"not a pdf": "paper:", "encrypted": "enter it in the PDF password field",
            "wrong password": "the password given does not open it", "scanned": "looks like a scan",
            "bad rubric": "rubric: rubric.json: node 'x'", "bad numbers": "'ten' is not a whole number"}[what]
    assert want in problems, problems
    if what == "bad numbers":
        assert "seeds: 99 is outside 1–20" in problems
        assert 'name="train_limit" min="1" value="ten"' in r.text  # what was typed is kept on the form
    assert ".uploads/" not in problems  # the staging path never shows
    assert run_dirs(runs) == []
    assert list((runs / ".uploads").iterdir()) == []  # the staged files are gone too


def test_an_accepted_upload_is_stored_under_chosen_names_and_queued(client, runs, tmp_path):
    rubric = (ROOT / "papers" / "demo-minilm-sentiment" / "rubric.json").read_bytes()
    data = {"csrf_token": token(client), "endpoint": "scripted", "train_limit": "64", "epochs": "1", "seeds": "2",
            "max_steps": "12", "max_wall_min": "30", "max_dollars": "0.5", "review": "on",
            "password": "open-sesame"}
    r = client.post("/new", data=data, files={
        "paper": ("../../etc/Evil Name;rm -rf.pdf", encrypted(tmp_path), "application/pdf"),
        "rubric": ("/abs/rubric.json", rubric, "application/json"),
        "addendum": ("notes.md", b"Use 3 epochs.", "text/markdown")})
    assert r.status_code == 303, r.text[-1500:]
    run_id = r.headers["location"].split("/runs/")[1].split("?")[0]
    assert re.fullmatch(r"evil-name-rm-+rf-\d{8}-\d{6}-[0-9a-f]{4}", run_id)
    (d,) = run_dirs(runs)
    assert d.name == run_id
    assert sorted(p.name for p in (d / "input").iterdir()) == ["addendum.md", "paper.pdf", "rubric.json"]
    cfg = json.loads((d / "run.json").read_text())
    assert cfg["paper_path"] == str((d / "input" / "paper.pdf").resolve())
    assert cfg["rubric_path"] == str((d / "input" / "rubric.json").resolve())
    assert cfg["train_limit"] == 64 and cfg["epochs"] == 1 and cfg["seeds"] == 2 and cfg["review"] is True
    assert cfg["budgets"]["max_steps"] == 12 and cfg["budgets"]["max_wall_s"] == 1800
    assert cfg["budgets"]["max_dollars"] == 0.5 and cfg["sandbox_backend"] == "docker"
    web = json.loads((d / "web.json").read_text())
    assert web["state"] == "queued" and web["title"] == "An Encrypted Paper"
    for f in d.rglob("*"):  # the password opened the PDF; it is in no file
        assert not f.is_file() or b"open-sesame" not in f.read_bytes(), f
    page = client.get(f"/runs/{run_id}").text
    assert "An Encrypted Paper" in page and "#1 in the queue" in page and 'id="cancel-run"' in page
    row = client.get("/api/runs").json()[0]
    assert row["status"] == "queued" and row["queue_position"] == 1 and row["paper"] == "An Encrypted Paper"


def test_an_upload_over_the_cap_is_refused_before_it_is_read(runs):
    client = TestClient(create_app(runs, start_runs=False, max_upload_mb=1), base_url=BASE)
    r = submit(client, b"%PDF-1.7\n" + b"0" * (2 << 20))
    assert r.status_code == 413 and "limit of 1 MiB" in r.text
    assert run_dirs(runs) == []


def test_the_form_offers_configured_endpoints_and_no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("REPRO_SCRIPTED_MODEL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-value")
    monkeypatch.setenv("REPRO_MODEL", "gpt-4.1-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    eps = tmp_path / "endpoints.yaml"
    eps.write_text("- {name: lab, model: qwen2.5-7b, base_url: 'http://127.0.0.1:8000/v1'}\n")
    client = TestClient(create_app(tmp_path / "runs", start_runs=False, endpoints_file=eps), base_url=BASE)
    html = client.get("/new").text
    options = re.findall(r'<option value="([^"]+)"', html)
    assert options == ["default", "embedded", "lab"]
    assert "gpt-4.1-mini at http://127.0.0.1:9/v1" in html and "qwen2.5-7b" in html
    assert "SECRET" not in html and "OPENAI_API_KEY" not in html


POSTS = ["/new", "/runs/demo-finished/override", "/runs/demo-paused/review", "/runs/demo-finished/cancel"]


def test_every_state_changing_route_is_in_the_guarded_list(client):
    routes = {r.path for r in client.app.routes if "POST" in getattr(r, "methods", ())}
    assert routes == {"/new", "/runs/{run_id}/override", "/runs/{run_id}/review", "/runs/{run_id}/cancel"}


@pytest.mark.parametrize("path", POSTS)
def test_a_post_without_the_session_token_or_from_another_site_is_refused(path, runs_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(tmp_path / "unused.json"))
    client = TestClient(create_app(runs_dir, start_runs=False), base_url=BASE)
    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}
    good = token(client)
    fields = {"leaf_id": "leaf-seed", "score": "1", "reason": "x", "action": "approve", "endpoint": "scripted"}
    no_token = client.post(path, data=fields)
    assert no_token.status_code == 403 and "session token is missing" in no_token.text
    other_session = TestClient(create_app(runs_dir, start_runs=False), base_url=BASE)
    stolen = other_session.post(path, data={**fields, "csrf_token": good})  # a token of another session
    assert stolen.status_code == 403
    cross = client.post(path, data={**fields, "csrf_token": good}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "another web site" in cross.text
    after = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}
    assert after == before  # nothing changed on disk


def test_a_review_answered_in_the_browser_queues_a_managed_run_to_continue(runs_dir, monkeypatch, tmp_path):
    from agent.web import jobs

    monkeypatch.setenv("REPRO_SCRIPTED_MODEL", str(tmp_path / "unused.json"))
    d = runs_dir / "demo-paused"
    jobs._update(d, state="ended", submitted_at=1.0, title="Demo")  # the server ran it up to its pause
    client = TestClient(create_app(runs_dir, start_runs=False), base_url=BASE, follow_redirects=False)
    r = client.post("/runs/demo-paused/review", data={"csrf_token": token(client), "action": "approve", "who": "bo"})
    assert r.status_code == 303 and "queued+to+continue" in r.headers["location"].replace("%20", "+")
    st = jobs.read_state(d)
    assert st["state"] == "queued" and st["resume"] is True and "approved by bo" in st["note"]


def test_after_a_restart_a_live_run_is_watched_and_a_dead_one_resumes(tmp_path):
    import subprocess
    import sys

    import psutil

    from agent.web import jobs

    runs = tmp_path / "runs"
    alive, dead, reused = runs / "alive", runs / "dead", runs / "reused"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(child.pid).create_time()
        for d, pid, when in ((alive, child.pid, created), (dead, 2 ** 22 + 7, created),
                             (reused, child.pid, created - 3600)):  # same pid, another process: pid reused
            d.mkdir(parents=True)
            jobs._update(d, state="running", submitted_at=1.0, pid=pid, pid_created=when)
        jobs.Scheduler(runs).recover()
        assert jobs.read_state(alive)["state"] == "running"  # the server was killed, not its run: watched again
        for d in (dead, reused):
            st = jobs.read_state(d)
            assert st["state"] == "queued" and st["resume"] is True and "restart of repro serve" in st["note"]
    finally:
        child.kill()
        child.wait()


def test_an_upload_of_a_bundled_paper_takes_its_rubric_and_checks(client, runs):
    r = submit(client, DEMO.read_bytes(), name="whatever.pdf")
    assert r.status_code == 303 and "bundled%20paper%20papers/demo-minilm-sentiment" in r.headers["location"]
    (d,) = run_dirs(runs)
    assert sorted(p.name for p in (d / "input").iterdir()) == ["paper.pdf", "rubric.checks.json", "rubric.json"]
    bundled = ROOT / "papers" / "demo-minilm-sentiment"
    assert (d / "input" / "rubric.json").read_bytes() == (bundled / "rubric.json").read_bytes()
    assert json.loads((d / "run.json").read_text())["rubric_path"] == str((d / "input" / "rubric.json").resolve())
