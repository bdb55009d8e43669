"""Reasons everywhere (issue 22) and what reproduces what (issue 21) in the report: every
experiment's status has a reason computed from what happened, a table row with no number says why,
a substituted setup shows the paper's absolute numbers as not comparable (no coloured Δ), every
check not run and every leaf not graded says why — in report.json, report.md and report.html (the
web UI embeds the same HTML)."""
from __future__ import annotations

import json
import re

from agent.nodes.grade import checks_not_run
from agent.nodes.report import claims_across_seeds, comparison, experiment_status
from graders.checks import Check
from graders.report import render_html, render_markdown, write_report
from graders.rubric import load_graded
from graders.stats import EXPERIMENT_STATUS


def _t(value: float, column: str, row: str) -> dict:
    return {"value": value, "text": f"{value:.1f}", "table": "Table 2", "row": row, "column": column, "page": 4,
            "metric": "accuracy"}


ADAPTERS = {"id": "adapters", "name": "Adapters", "recipe": None, "claim": "adapters match full fine-tuning",
            "targets": [_t(80.0, "Frozen", "Adapters"), _t(84.0, "Full", "Adapters")]}
FULL = {"id": "full", "name": "Full fine-tuning", "recipe": "full", "targets": [_t(84.4, "Full", "Full")]}
SUBSTITUTED = [{"what": "base model", "paper": "BERT-large", "ours": "MiniLM-L6", "reason": "offline"}]
REP = {"ok": True, "start_time": 1.0, "summary": "exited 0 after 700 s", "ignored": []}
# one number per configuration, as in the issue: the word join alone would take the first key
MAPPED = {"adapters": {"metrics": {"accuracy_x": 0.5, "accuracy_frozen": 0.61, "accuracy_full": 0.69},
                       "before": {}, "file": "results/adapters/metrics.json", "info": {},
                       "reproduces": {"accuracy_frozen": {"target": "T1", "claim": "C1"},
                                      "accuracy_full": {"target": "T2"}}}}


def _plan(deviations=()) -> dict:
    return {"experiments": [ADAPTERS, FULL], "deviations": list(deviations)}


def _data(plan: dict, results: dict) -> dict:
    rows, _ = comparison(plan, results)
    return {"run_id": "x", "status": "done", "verdict": "v", "warnings": [],
            "paper": {"title": "T", "link": "file:///p.pdf", "source": "p.pdf"}, "models": {"agent": "a", "judge": "j"},
            "comparison": rows, "before_after": [], "deviations": plan["deviations"], "grade": None,
            "graded_tree": None, "cost": {}, "environment": {},
            "experiments": experiment_status(plan, results, {"exit": "submitted"}, REP)}


def _delta_cells(html: str) -> list[str]:
    table = html[html.index('<table id="comparison">'):]
    table = table[:table.index("</table>")]
    return re.findall(r"<tr>\s*<td>.*?</td><td>.*?</td>\s*<td>.*?</td>\s*<td>.*?</td>\s*(<td[^>]*>[^<]*</td>)",
                      table, re.S)


def test_the_table_reads_the_files_own_map_first():
    rows = {r["target_id"]: r for r in comparison(_plan(), MAPPED)[0] if r["experiment_id"] == "adapters"}
    assert rows["T1"]["reproduced"]["key"] == "metrics.accuracy_frozen"
    assert rows["T2"]["reproduced"]["key"] == "metrics.accuracy_full"
    assert rows["T1"]["reproduced"]["joined"] == "reproduces" and rows["T1"]["claim"]["id"] == "C1"
    assert abs(rows["T2"]["delta"] - (69.0 - 84.0)) < 1e-9
    plain = {"adapters": {**MAPPED["adapters"], "reproduces": {}}}  # the fallback: the word join, as before
    rows = {r["target_id"]: r for r in comparison(_plan(), plain)[0] if r["experiment_id"] == "adapters"}
    assert rows["T1"]["reproduced"]["joined"] == "name"


def test_a_substituted_setup_shows_absolute_targets_as_not_comparable_without_a_coloured_delta():
    same = _data(_plan(), MAPPED)
    other = _data(_plan(SUBSTITUTED), MAPPED)
    assert all(r["comparable"] for r in same["comparison"])
    adapters = [r for r in other["comparison"] if r["experiment_id"] == "adapters"]
    assert adapters and all(r["comparable"] is False and "BERT-large → MiniLM-L6" in r["why"] for r in adapters)
    # the paper's setup: a coloured Δ; another setup: "not comparable", no colour
    assert {re.search(r'class="(\w*)"', c).group(1) for c in _delta_cells(render_html(same))} <= {"pos", "neg", ""}
    assert any('class="neg"' in c for c in _delta_cells(render_html(same)))
    cells = _delta_cells(render_html(other))
    assert cells and not any('class="pos"' in c or 'class="neg"' in c for c in cells)
    assert sum("not comparable" in c for c in cells) == 2  # the two reproduced adapters rows
    md = render_markdown(other)
    line = next(x for x in md.splitlines() if x.startswith("| Adapters | accuracy | 84.0 |"))
    assert "| not comparable |" in line and "-15.00" not in line
    assert "-15.00" in render_markdown(same)


def test_a_row_with_no_number_says_why():
    results = {"adapters": {"metrics": {"loss": 0.3}, "before": {}, "file": "results/adapters/metrics.json",
                            "info": {}}}
    rows = comparison(_plan(), results)[0]
    t1 = next(r for r in rows if r["target_id"] == "T1" and r["experiment_id"] == "adapters")
    assert t1["reproduced"] is None and "has no number for the paper's accuracy (Table 2, column 'Frozen')" in t1["why"]
    assert "(loss)" in t1["why"]
    md = render_markdown(_data(_plan(), results))
    assert "not reproduced: results/adapters/metrics.json has no number" in md


def test_every_status_has_a_reason_computed_from_what_happened():
    plan = _plan()
    cases = [
        # ran, but its numbers match no target: the reason names what the file has
        ({"adapters": {"metrics": {"loss": 0.3}, "before": {}, "file": "results/adapters/metrics.json", "info": {}}},
         REP, {"exit": "submitted"}, "adapters", "ran, no comparable target", "(loss)"),
        # ran, numbers found, no check: they are named with the paper's
        (MAPPED, REP, {"exit": "submitted"}, "adapters", "ran, no comparable target", "accuracy_frozen 0.61 vs 80.0"),
        # a wrong map: said, and the word join used instead
        ({"adapters": {**MAPPED["adapters"], "reproduces": {},
                       "mapping_error": "results/adapters/metrics.json: reproduces.acc: 'acc' is not a key"}},
         REP, {"exit": "submitted"}, "adapters", "ran, no comparable target", "'acc' is not a key"),
        # a results file that breaks the contract is not called 'not produced by the reproduction'
        ({}, dict(REP, ignored=["results/full/metrics.json: metrics: Field required"]), {"exit": "submitted"},
         "full", "failed", "breaks the contract"),
        # the reproduction failed with no summary recorded: still a reason, never 'None'
        ({}, {"ok": False, "start_time": 1.0, "returncode": 137, "ignored": []}, {"exit": "submitted"},
         "full", "failed", "exited 137"),
        # the run ended before the reproduction and the agent never ran
        ({}, {}, {}, "adapters", "not attempted", "the coding agent never ran"),
        ({}, REP, {"exit": "context", "exit_detail": "the context overflowed"}, "adapters", "not attempted",
         "the context overflowed"),
    ]
    for results, rep, loop, eid, status, phrase in cases:
        got = {e["id"]: e for e in experiment_status(plan, results, loop, rep)}
        assert all(e["status"] in EXPERIMENT_STATUS and e["reason"] and "None" not in e["reason"]
                   for e in got.values()), got
        assert got[eid]["status"] == status and phrase in got[eid]["reason"], (phrase, got[eid])


def test_claims_read_the_map_first_and_absolute_ones_are_not_comparable_on_another_setup():
    # keys that share no word with the columns: only the map says which is which
    runs = {str(s): {"results": {"adapters": {**MAPPED["adapters"],
                                              "metrics": {"accuracy_x": 0.5, "accuracy_c1": 0.79 + (s - 42) / 1000,
                                                          "accuracy_c2": 0.84},
                                              "reproduces": {"accuracy_c1": {"target": "T1"},
                                                             "accuracy_c2": {"target": "T2"}}}}}
            for s in (42, 43, 44)}
    claims = {c["target_id"]: c for c in claims_across_seeds(_plan(), runs, []) if c["experiment"] == "adapters"}
    assert claims["T1"]["verdict"] == "replicated" and abs(claims["T1"]["mean"] - 79.1) < 1e-6
    other = {c["target_id"]: c for c in claims_across_seeds(_plan(SUBSTITUTED), runs, [])
             if c["experiment"] == "adapters"}
    assert other["T1"]["verdict"] == "not comparable" and "BERT-large → MiniLM-L6" in other["T1"]["why"]


def test_checks_not_run_and_leaves_not_graded_say_why(tmp_path):
    leaf = lambda lid, cat, valid, expl, meta=None: {
        "id": lid, "requirements": f"criterion {lid}", "weight": 1, "score": 0.0, "valid_score": valid,
        "task_category": cat, "explanation": expl, "judge_metadata": meta, "sub_tasks": []}
    tree = {"id": "root", "requirements": "root", "weight": 1, "score": 0.0, "valid_score": True,
            "task_category": None, "explanation": "", "judge_metadata": None, "sub_tasks": [
                leaf("res", "Result Analysis", True, "No reproduction was run, so nothing was executed or reproduced.",
                     {"rule": "no-evidence"}),
                leaf("code", "Code Development", False, "No valid verdict after 3 attempts: not JSON"),
                leaf("blank", "Code Development", False, "")]}
    checks = {"res": [Check(leaf_id="res", kind="close", experiment="adapters", metric="accuracy",
                            paper={"value": 80.0, "text": "80.0", "table": "Table 2", "row": "Adapters",
                                   "column": "Frozen", "page": 4})]}
    not_run = checks_not_run(load_graded(tree), checks)
    assert [(c["leaf_id"], c["experiments"]) for c in not_run] == [("res", ["adapters"])]
    assert not_run[0]["why"].startswith("No reproduction was run")
    data = {**_data(_plan(), {}), "graded_tree": tree,
            "grade": {"score": 0.0, "coverage": 0.33, "leaves": 3, "invalid_leaves": 2, "rubric_source": "t",
                      "judge_model": "j", "judge_warnings": [], "checks": [], "checks_not_run": not_run}}
    write_report(data, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert {u["id"]: u["why"] for u in report["ungraded"]} == {
        "code": "No valid verdict after 3 attempts: not JSON",
        "blank": "the judge gave no usable verdict and recorded no reason"}
    md, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    for text in (md, html):
        assert "Checks not run" in text and "No reproduction was run" in text
        assert "recorded no reason" in text and "not JSON" in text
    assert 'id="checks-not-run"' in html and 'id="ungraded"' in html


def test_a_report_with_no_grade_says_why(tmp_path):
    data = {**_data(_plan(), {}), "status": "stopped", "stop_reason": "the token budget (2000000) is spent"}
    write_report(data, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["not_graded"] == "the run stopped before grading: the token budget (2000000) is spent"
    assert "Not graded. <span class=\"why\">The run stopped before grading" in (tmp_path / "report.html").read_text()
