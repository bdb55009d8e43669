"""Checked leaves: arithmetic on the reproduction's files decides numeric leaves; proposals of
the judge are validated before use."""
import json

import pytest

from graders.checks import Check, PaperValue, evaluate, evaluate_all, load_sidecar, propose
from graders.rubric import load_rubric

RESULTS = {"head": {"metrics": {"accuracy": 0.709}, "before": {"accuracy": 0.49}, "file": "results/head/metrics.json",
                    "info": {"trainable_params": 148610}},
           "lora": {"metrics": {"acc": 0.812}, "before": {}, "file": "results/lora/metrics.json",
                    "info": {"trainable_params": 222338}},
           "full": {"metrics": {"accuracy": 0.839}, "before": {}, "file": "results/full/metrics.json",
                    "info": {"trainable_params": 22713986}}}
PAPER = PaperValue(value=81.2, text="81.2", table="Table 1", row="LoRA", column="Accuracy", page=1)


@pytest.mark.parametrize("check,passed,arith", [
    (Check(leaf_id="a", kind="close", experiment="lora", metric="accuracy", paper=PAPER), True, "|81.2 - 81.2| = 0 <= 3"),
    (Check(leaf_id="a", kind="close", experiment="head", metric="accuracy", paper=PAPER), False, "> 3"),
    (Check(leaf_id="a", kind="between", experiment="head", metric="before.accuracy", low=40, high=60, percent=True),
     True, "40 <= 49 <= 60"),
    (Check(leaf_id="a", kind="greater", experiment="lora", metric="accuracy",
           other={"experiment": "head", "metric": "accuracy"}), True, "> 0"),
    (Check(leaf_id="a", kind="ratio_below", experiment="lora", metric="trainable_params",
           other={"experiment": "full", "metric": "trainable_params"}, limit=0.05), True, "< 0.05"),
    (Check(leaf_id="a", kind="close", experiment="qlora", metric="accuracy", paper=PAPER), False, "no results file"),
])
def test_each_kind_by_hand(check, passed, arith):
    got = evaluate(check, RESULTS)
    assert got["passed"] is passed and arith in got["arithmetic"], got["arithmetic"]


def test_a_leaf_with_several_checks_passes_only_when_all_do():
    both = [Check(leaf_id="x", kind="close", experiment="lora", metric="accuracy", paper=PAPER),
            Check(leaf_id="x", kind="close", experiment="head", metric="accuracy", paper=PAPER)]
    got = evaluate_all(both, RESULTS)
    assert got["passed"] is False and len(got["parts"]) == 2 and ";" in got["arithmetic"]


def test_the_bundled_sidecars_name_leaves_of_their_rubrics():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "papers"
    for paper in ("demo-minilm-sentiment", "variant-lora-qv-macro-f1", "rlhf-grpo-smollm2-reviews"):
        ids = {leaf.id for leaf in load_rubric(root / paper / "rubric.json").leaves()}
        checks = load_sidecar(root / paper / "rubric.json")
        assert checks and set(checks) <= ids, paper


@pytest.mark.parametrize("paper", ["variant-lora-qv-macro-f1", "rlhf-grpo-smollm2-reviews"])
def test_a_bundled_papers_checks_quote_its_pdf_and_pass_on_its_own_run(paper):
    """The sidecar's printed numbers are the ones ingestion reads from the PDF (same table, row,
    column, page), and the run the paper was written from passes every check."""
    from pathlib import Path

    from graders.contract import read_results
    from papers.ingest import load_paper

    root = Path(__file__).resolve().parents[3] / "papers" / paper
    printed = {(r.table, r.row, r.column, r.page): r.value for r in load_paper(root / "paper.pdf").results}
    checks = [c for cs in load_sidecar(root / "rubric.json").values() for c in cs]
    for c in checks:
        if c.paper is not None:
            assert printed.get((c.paper.table, c.paper.row, c.paper.column, c.paper.page)) == c.paper.value, c
    results, ignored = read_results(root / "run", start_time=0.0)
    assert results and not ignored
    for c in checks:
        got = evaluate(c, results)
        assert got["passed"], got["arithmetic"]


class Proposer:
    """A judge that maps each criterion to the answer the test gives for it."""

    name = "proposer"

    def __init__(self, answers):
        self.answers = answers

    def complete(self, messages, *, schema=None, **kw):
        from types import SimpleNamespace

        crit = messages[1]["content"].split("\n")[0]
        ans = next(v for k, v in self.answers.items() if k in crit)
        return SimpleNamespace(parsed=ans, text=json.dumps(ans))


def test_proposals_are_validated_before_they_decide_a_leaf():
    from papers.paper import ReportedResult

    rubric = load_rubric({"id": "r", "requirements": "root", "weight": 1, "task_category": None, "sub_tasks": [
        {"id": "ok", "requirements": "LoRA accuracy is within 3 points of Table 1", "weight": 1, "sub_tasks": [],
         "task_category": "Result Analysis"},
        {"id": "bad", "requirements": "Full fine-tuning accuracy is within 3 points of Table 1", "weight": 1,
         "sub_tasks": [], "task_category": "Result Analysis"},
        {"id": "none", "requirements": "The table is nicely formatted", "weight": 1, "sub_tasks": [],
         "task_category": "Result Analysis"}]})
    printed = [ReportedResult(table="Table 1", row="LoRA", column="Accuracy", value=81.2, text="81.2", page=1)]
    judge = Proposer({"LoRA accuracy": {"applies": True, "reproduced": "lora:acc", "paper": "P1", "tolerance": 3},
                      "Full fine-tuning": {"applies": True, "reproduced": "full:accuracy", "paper": "P7",
                                           "tolerance": 3},
                      "nicely": {"applies": False, "reproduced": "head:accuracy", "paper": "P1", "tolerance": 0}})
    from graders.checks import numeric_leaves

    checks, record = propose(judge, numeric_leaves(rubric, 10), RESULTS, printed)
    assert set(checks) == {"ok"} and checks["ok"][0].experiment == "lora" and checks["ok"][0].metric == "acc"
    why = {r["leaf_id"]: r for r in record}
    assert why["ok"]["used"] and not why["bad"]["used"] and "no printed number" in why["bad"]["why"]
    assert evaluate_all(checks["ok"], RESULTS)["passed"]
