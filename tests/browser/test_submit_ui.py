"""A newcomer's whole demo in headless Chromium: open `repro serve`, submit the bundled demo paper,
follow it live, survive a restart of the server, read the report; cancel a second run mid-way;
see a rejected upload's message; and find forged posts refused. The server is the real CLI (a
child process), the sandbox the real Docker engine, the model a scripted one."""
from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from webserve import DEMO, Serve, scripted_session  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def _ours(run_id: str) -> list:
    from sandbox.docker import list_ours

    containers, volumes = list_ours(run_id)
    return containers + volumes


def _submit_demo(page, url: str) -> str:
    page.goto(url + "/")
    page.click("#new-run-link")
    page.wait_for_url(re.compile(r"/new$"))
    page.set_input_files("#paper", str(DEMO))
    page.fill("input[name=train_limit]", "64")
    page.fill("input[name=max_steps]", "20")
    page.click("#submit-run")
    page.wait_for_url(re.compile(r"/runs/[a-z0-9-]+\?msg=Queued"))  # the page then follows the run
    return re.search(r"/runs/([a-z0-9-]+)\?", page.url).group(1)


def test_submit_follow_restart_and_read_the_report(page, tmp_path, docker_engine, shots):
    runs = tmp_path / "runs"
    script = scripted_session(tmp_path / "script.json", smoke_sleep_s=10)
    serve = Serve(runs, script)
    try:
        run_id = _submit_demo(page, serve.url)
        page.evaluate("window.__notReloaded = true")  # gone if the page reloads
        # the steps appear live, streamed, without a reload: the agent's turns and its last tool call
        page.wait_for_function("document.querySelector('#activity') && "
                               "/coding agent, turn/.test(document.querySelector('#activity').textContent)",
                               timeout=180_000)
        page.wait_for_function("/start_job|wait_job/.test(document.querySelector('#last-call').textContent)",
                               timeout=180_000)
        assert page.evaluate("window.__notReloaded") is True
        assert re.search(r"agent turns \d+ of 20", page.locator("#budget").inner_text())
        assert page.locator("#events li").count() >= 3
        assert page.locator(".step.done").all_inner_texts()[:2] == ["ingest", "plan"]
        page.screenshot(path=str(shots / "10-live-run.png"), full_page=True)
    finally:
        serve.stop(signal.SIGTERM)  # the server restarts under the open page
    serve = Serve(runs, script, port=serve.port)
    try:
        # the page's stream reconnects to the new server, the run resumes, and the page turns into the report
        page.wait_for_selector("#verdict", timeout=300_000)
        assert page.locator("#run-status").inner_text() == "done"
        assert "Whole-rubric score" in page.locator("#verdict").inner_text()
        assert page.locator("#flash").count() == 0  # the "Queued" message went with the reload
        page.screenshot(path=str(shots / "11-finished-report.png"), full_page=True)
        page.goto(serve.url + "/")
        row = page.locator(f"tr[data-run='{run_id}']")
        assert row.locator("td").first.inner_text().startswith("Head, LoRA or Full?")  # the paper's title
        assert "done" in row.inner_text() and re.search(r"\d+ (s|min)", row.inner_text())
        assert row.locator(".judge-cell").inner_text() in ("not measured", "—") or "F1" in row.inner_text()
    finally:
        serve.stop()
    assert _ours(run_id) == []


def test_cancel_a_run_mid_way_then_a_rejected_upload_then_forged_posts(page, tmp_path, docker_engine, shots):
    runs = tmp_path / "runs"
    serve = Serve(runs, scripted_session(tmp_path / "script.json", smoke_sleep_s=60))
    try:
        run_id = _submit_demo(page, serve.url)
        page.wait_for_function("/start_job|wait_job/.test(document.querySelector('#last-call').textContent)",
                               timeout=180_000)
        assert _ours(run_id), "its workspace container runs the smoke job"
        page.click("#cancel-run")
        page.wait_for_function("document.querySelector('#run-status') && "
                               "document.querySelector('#run-status').textContent === 'cancelled'", timeout=90_000)
        assert "Not graded — run cancelled" in page.locator("#verdict").inner_text()
        assert _ours(run_id) == []  # no container, no volume left
        page.screenshot(path=str(shots / "12-cancelled.png"), full_page=True)

        # a rejected upload: the message is on the form, and nothing is queued
        page.goto(serve.url + "/new")
        bad = tmp_path / "notes.pdf"
        bad.write_text("these are my notes, not a PDF")
        page.set_input_files("#paper", str(bad))
        page.click("#submit-run")
        problems = page.locator("#form-problems")
        assert "Nothing was queued" in problems.inner_text() and "paper:" in problems.inner_text()
        assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == [run_id]
        page.screenshot(path=str(shots / "13-rejected-upload.png"), full_page=True)

        # forged posts: one without the session token (same origin), one from another origin
        status = page.evaluate("""async (u) => (await fetch(u, {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'who=eve'})).status""",
                               f"{serve.url}/runs/{run_id}/cancel")
        assert status == 403
        page.goto("about:blank")  # a page of no origin of ours: what another site's page would be
        page.set_content(f"""<form id=f method=post action="{serve.url}/new" enctype="multipart/form-data">
            <input name=csrf_token value=x><input name=endpoint value=scripted></form>""")
        with page.expect_response(f"{serve.url}/new") as forged:
            page.evaluate("document.getElementById('f').submit()")
        assert forged.value.status == 403  # a page of no origin (or another one) cannot queue a run
        page.wait_for_selector("#error")
        assert "another web site" in page.locator("#error").inner_text()
        assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == [run_id]
    finally:
        serve.stop()
