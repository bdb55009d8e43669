"""End to end in headless Chromium: what a reviewer does, click by click."""
import json
import re

import pytest

pytestmark = pytest.mark.browser


def test_runs_list_then_run_then_rubric_then_cited_line(server, page, shots):
    page.goto(server + "/")
    table = page.locator("#runs")
    assert table.locator("tr[data-run=demo-finished]").inner_text().count("0.50") == 1
    assert "paused for review" in table.locator("tr[data-run=demo-paused]").inner_text()
    running = table.locator("tr[data-run=demo-running]")
    assert "2/7 steps" in running.inner_text() and "now implement" in running.inner_text()
    page.screenshot(path=str(shots / "01-runs.png"), full_page=True)

    page.click("tr[data-run=demo-finished] a")
    page.wait_for_url(re.compile(r"/runs/demo-finished$"))
    assert page.locator("#verdict").inner_text().startswith("Replication score 0.50")
    leaf = page.locator("#leaf-leaf-lora")
    assert not leaf.is_visible()  # collapsed under its group
    page.click("#node-g-code > summary")
    assert leaf.is_visible()
    evidence = leaf.locator("a.evidence-link")
    assert not evidence.is_visible()
    leaf.locator("summary").click()
    assert evidence.inner_text() == "submission/train.py:10-11"
    page.screenshot(path=str(shots / "02-run-rubric.png"), full_page=True)

    evidence.click()
    page.wait_for_url(re.compile(r"/files/submission/train.py\?lines=10-11#L10$"))
    row = page.locator("tr#L10")
    assert "lora_r = 8" in row.inner_text() and "hl" in row.get_attribute("class")
    assert page.locator("tr#L11").get_attribute("class") == "hl"
    assert page.locator("tr#L12").get_attribute("class") in ("", None)
    assert "sets lora_r = 8" in row.locator("td.note").inner_text()
    box = row.bounding_box()
    assert box and 0 <= box["y"] <= 900  # scrolled to the cited line
    page.screenshot(path=str(shots / "03-code-cited-line.png"))


def test_override_changes_the_score_in_page_list_and_report_json(server, page, shots, runs_dir):
    page.goto(server + "/runs/demo-finished#leaf-leaf-seed")
    leaf = page.locator("#leaf-leaf-seed")
    assert leaf.locator("form").is_visible()  # the link's target was opened
    assert page.locator("#score").inner_text() == "0.500"
    leaf.locator("select[name=score]").select_option("1")
    leaf.locator("input[name=reason]").fill("random.seed(SEED) on line 9 fixes the seed")
    leaf.locator("input[name=who]").fill("ana")
    leaf.locator("button[type=submit]").click()
    page.wait_for_selector("#flash")
    assert "score now 0.75" in page.locator("#flash").inner_text()
    assert page.locator("#score").inner_text() == "0.750"
    assert page.locator("#run-score").inner_text() == "0.75"
    assert "judge alone: 0.50" in page.locator("#verdict").inner_text()
    assert "Overridden by ana" in page.locator("#leaf-leaf-seed .override").inner_text()
    page.screenshot(path=str(shots / "04-after-override.png"), full_page=True)

    report = json.loads((runs_dir / "demo-finished" / "report.json").read_text())
    assert report["grade"]["score"] == 0.75 and report["overrides"][-1]["who"] == "ana"
    page.goto(server + "/")
    assert "0.75" in page.locator("tr[data-run=demo-finished] td.score-cell").inner_text()
    page.goto(server + "/runs/demo-finished/report.html")
    assert "0.750" in page.locator("#score").inner_text()


def test_approve_a_paused_run(server, page, shots, runs_dir):
    decision = runs_dir / "demo-paused" / "review" / "decision.json"
    assert not decision.exists()
    page.goto(server + "/runs/demo-paused")
    assert "Waiting for your review: plan" in page.locator("#review").inner_text()
    page.screenshot(path=str(shots / "05-paused.png"), full_page=True)
    page.fill("#review input[name=who]", "bo")
    page.click("#approve")
    page.wait_for_selector("#flash")
    assert "Approved by bo" in page.locator("#flash").inner_text()
    assert json.loads(decision.read_text())["action"] == "approve"
    assert page.locator("#review").count() == 0


def test_errors_are_pages(server, page, shots):
    page.goto(server + "/runs/no-such-run")
    assert page.locator("#error h1").inner_text() == "No such run"
    assert "Traceback" not in page.content()
    page.screenshot(path=str(shots / "06-error.png"))
