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


def test_checks_read_the_results_files_reproduces_map_first(tmp_path):
    """An experiment that writes one number per configuration: the word join picks the first key of
    the metric's family, its own map says which number reproduces which printed cell."""
    from graders.contract import read_results

    frozen = {"value": 80.0, "text": "80.0", "table": "Table 1", "row": "Adapters", "column": "Frozen", "page": 3,
              "metric": "accuracy"}
    full = dict(frozen, value=84.0, text="84.0", column="Full")
    plan = {"experiments": [{"id": "adapters", "name": "Adapters", "targets": [frozen, full]},
                            {"id": "head", "name": "Head", "targets": []}]}
    path = tmp_path / "results" / "adapters" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"metrics": {"accuracy_other": 0.5, "accuracy_a": 0.61, "accuracy_b": 0.83},
                                "reproduces": {"accuracy_a": {"target": "T1"}, "accuracy_b": {"target": "T2"}}}))
    (tmp_path / "results" / "head").mkdir()
    (tmp_path / "results" / "head" / "metrics.json").write_text(json.dumps({"metrics": {"accuracy": 0.7}}))
    results = read_results(tmp_path, 0.0, plan)[0]
    close = Check(leaf_id="x", kind="close", experiment="adapters", metric="accuracy", paper=PaperValue(**{
        k: v for k, v in full.items() if k != "metric"}), tolerance=3.0)
    got = evaluate(close, results)
    assert got["passed"] and got["key"] == "accuracy_b" and got["joined"] == "reproduces", got
    assert got["arithmetic"].startswith("|83 - 84|")
    # a comparison names a bare metric: with two mapped accuracy targets the name cannot tell, so the
    # word join decides; the experiment on the other side has no map at all
    greater = Check(leaf_id="y", kind="greater", experiment="adapters", metric="accuracy",
                    other={"experiment": "head", "metric": "accuracy"})
    assert evaluate(greater, results)["joined"] == "name"
    path.write_text(json.dumps({"metrics": {"accuracy_other": 0.5, "accuracy_a": 0.61},
                                "reproduces": {"accuracy_a": {"target": "T1"}}}))
    one = read_results(tmp_path, 0.0, plan)[0]
    got = evaluate(greater, one)  # one mapped accuracy target: that is the experiment's accuracy
    assert got["key"] == "accuracy_a" and got["passed"] is False and "0.61 - 0.7" in got["arithmetic"]
    # without the plan the map's ids name no cell: the word join is the fallback
    assert evaluate(close, read_results(tmp_path, 0.0)[0])["joined"] == "name"


def test_a_check_that_finds_no_number_says_what_the_file_has():
    results = {"lora": {"metrics": {"f1_movie": 0.7, "loss": 0.3}, "before": {}, "file": "results/lora/metrics.json",
                        "info": {}, "mapping_error": "results/lora/metrics.json: reproduces.f1: 'f1' is not a key"}}
    got = evaluate(Check(leaf_id="a", kind="close", experiment="lora", metric="accuracy", paper=PAPER), results)
    assert got["passed"] is False and got["reproduced"] is None
    assert "its 'metrics': f1_movie, loss" in got["arithmetic"] and "column 'Accuracy'" in got["arithmetic"]
    assert "'f1' is not a key" in got["arithmetic"]


def test_a_sidecar_written_for_one_plan_checks_another_plans_experiments():
    """The variant paper's sidecar names its experiment "lora"; a capable model planned it as
    "lora-query-value-r-4". Bound by the paper cells that experiment targets, every check passes on
    the paper's own run filed under the new id (unbound, each found "no results file")."""
    from pathlib import Path

    from graders.checks import bind_to_plan
    from graders.contract import read_results

    root = Path(__file__).resolve().parents[3] / "papers" / "variant-lora-qv-macro-f1"
    sidecar = load_sidecar(root / "rubric.json")
    cells = [c.paper.model_dump() for cs in sidecar.values() for c in cs if c.paper]
    plan = {"experiments": [{"id": "lora-query-value-r-4", "name": "LoRA (query, value), r = 4", "targets": cells},
                            {"id": "before-fine-tuning", "name": "Before fine-tuning", "targets": []}]}
    results = {"lora-query-value-r-4" if k == "lora" else k: v for k, v in read_results(root / "run", 0.0)[0].items()}
    checks = [c for cs in sidecar.values() for c in cs]
    assert all("no results file" in evaluate(c, results)["arithmetic"] for c in checks)
    bound, notes = bind_to_plan(sidecar, plan)
    assert notes == ["checks of experiment 'lora' bound to the plan's 'lora-query-value-r-4' (it targets the same "
                     "paper cells)"]
    for c in (c for cs in bound.values() for c in cs):
        got = evaluate(c, results)
        assert got["passed"] and c.experiment == "lora-query-value-r-4", got["arithmetic"]
    assert bind_to_plan(sidecar, {"experiments": [{"id": "other", "targets": []}]})[1] == [
        "checks of experiment 'lora': no planned experiment targets their paper cells; they find no results"]
