"""End to end in headless Chromium: what a reviewer does, click by click."""
import json
import re

import pytest

from agent import review_store

pytestmark = pytest.mark.browser


def test_runs_list_then_run_then_rubric_then_cited_line(server, page, shots):
    page.goto(server + "/")
    table = page.locator("#runs")
    assert table.locator("tr[data-run=demo-finished]").inner_text().count("0.50") == 1
    assert "paused for review" in table.locator("tr[data-run=demo-paused]").inner_text()
    running = table.locator("tr[data-run=demo-running]")
    assert "2/6 steps" in running.inner_text() and "now code" in running.inner_text()
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


def test_trajectory_from_the_report_turn_by_turn(server, page, shots):
    page.goto(server + "/runs/demo-finished")
    assert page.locator("#agent-summary").inner_text().startswith("4 turns, 6 tool calls")
    page.click("#trajectory summary a")  # "step by step with diffs"
    page.wait_for_url(re.compile(r"/runs/demo-finished/trajectory$"))
    assert page.locator("#tab-trajectory").get_attribute("class") == "on"
    assert page.locator("section.turn").count() == 4

    smoke = page.locator("#call-2-1")
    assert "failed" in smoke.locator("h4").inner_text()
    full = smoke.locator("details.fold pre.full")
    assert not full.is_visible()  # 34 lines of output: folded to a preview
    assert "epoch 0 step 0/30" in smoke.locator("pre.preview").inner_text()
    smoke.locator("details.fold > summary").click()
    assert full.is_visible() and "<script>alert(1)</script>" in full.inner_text()  # shown as text, never run
    assert not smoke.locator("pre.preview").is_visible()

    guided = page.locator("#turn-3")
    assert "The model chose among 4 tools" in guided.locator(".menu").inner_text()  # a real choice, the model's
    assert "Reminder: 2 of 60 turns used" in guided.locator(".note-to-model").inner_text()
    diff = guided.locator(".file-diff[data-file='train.py'] pre.diff")
    assert diff.locator("span.add").all_inner_texts() == ["+    acc = 0.8", '+    print("accuracy", acc)']
    assert diff.locator("span.del").all_inner_texts() == ['-    print("accuracy", acc)  # bug: acc undefined']
    green = diff.locator("span.add").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert green == "rgb(230, 255, 236)"
    page.screenshot(path=str(shots / "04-trajectory.png"), full_page=True)

    page.click("#only-changes")
    page.wait_for_url(re.compile(r"/trajectory\?only=changes$"))
    assert page.locator("section.turn").evaluate_all("s => s.map(e => e.id)") == ["turn-1", "turn-3"]
    page.goto(server + "/runs/demo-finished/diff")  # the old page's address still leads here
    assert page.url.endswith("/runs/demo-finished/trajectory?only=changes")


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
    page.screenshot(path=str(shots / "05-after-override.png"), full_page=True)

    report = json.loads((runs_dir / "demo-finished" / "report.json").read_text())
    assert report["grade"]["score"] == 0.75 and report["overrides"][-1]["who"] == "ana"
    page.goto(server + "/")
    assert "0.75" in page.locator("tr[data-run=demo-finished] td.score-cell").inner_text()
    page.goto(server + "/runs/demo-finished/report.html")
    assert "0.750" in page.locator("#score").inner_text()


def test_review_a_real_pause_resume_it_and_watch_it_finish(server, page, shots, runs_dir, fx):
    d = runs_dir / "demo-paused"
    decision = d / "review" / "decision.json"
    assert not decision.exists()
    page.goto(server + "/runs/demo-paused")
    box = page.locator("#review")
    assert "Waiting for your review: plan" in box.inner_text()
    assert box.locator("#review-experiments li").count() == len(review_store.read_pending(d)["plan"]["experiments"])
    page.screenshot(path=str(shots / "06-paused-plan.png"), full_page=True)
    page.fill("#review input[name=who]", "bo")
    page.click("#approve")
    page.wait_for_selector("#flash")
    assert "Approved by bo" in page.locator("#flash").inner_text()
    assert json.loads(decision.read_text())["action"] == "approve"
    assert page.locator("#review").count() == 0
    assert page.locator("#resume-command").inner_text().startswith("repro run --resume demo-paused")
    assert page.locator("#run-status").inner_text() == "waiting to resume"

    fx.resume_run(runs_dir, "demo-paused")  # what `repro run --resume demo-paused` does
    page.reload()
    box = page.locator("#review")
    assert "Waiting for your review: code" in box.inner_text()
    assert box.locator("#review-files a").all_inner_texts() == ["reproduce.sh", "train.py"]
    assert page.locator("#loop-progress").inner_text() == \
        "coding agent: turn 8, 8 tool calls, loop ended: submitted (naive Bayes baseline for the head experiment)"
    page.screenshot(path=str(shots / "07-paused-code.png"), full_page=True)

    # the page polls: once the approved run is resumed and finishes, it shows the report by itself,
    # even when its first answer already says "done" (polls fail until the run is over)
    page.route("**/api/runs/demo-paused/progress", lambda route: route.abort())
    page.click("#approve")
    page.wait_for_selector("#flash")
    assert page.locator("#run-status").inner_text() == "waiting to resume"
    fx.resume_run(runs_dir, "demo-paused")
    page.unroute("**/api/runs/demo-paused/progress")
    page.wait_for_selector("#verdict", timeout=20_000)
    assert page.locator("#run-status").inner_text() == "done"
    assert page.locator("#experiments").inner_text().count("not attempted") == 2
    page.screenshot(path=str(shots / "08-resumed-to-the-end.png"), full_page=True)


def test_errors_are_pages(server, page, shots):
    page.goto(server + "/runs/no-such-run")
    assert page.locator("#error h1").inner_text() == "No such run"
    assert "Traceback" not in page.content()
    page.screenshot(path=str(shots / "09-error.png"))
