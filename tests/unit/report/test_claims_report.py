"""The paper's claims are the unit of replication: each has a kind and is tested on the
reproduction's own numbers (graders.claims), its verdict decides its experiment's status, and a
report whose numbers contradict the paper's claim says so everywhere — report.json, report.md,
report.html — even though every results file is there."""
from __future__ import annotations

import json
import re

import pytest

from agent.config import RunConfig
from agent.nodes.report import build_report_data
from graders.claims import derive_claims, verdict
from graders.files import write_json
from graders.report import write_report
from graders.stats import NOT_COMPARABLE


def _cell(value: float, row: str, column: str = "SST-2") -> dict:
    return {"value": value, "text": f"{value:.1f}", "table": "Table 1", "row": row, "column": column, "page": 5,
            "metric": "accuracy"}


ADAPTERS, FULL = _cell(84.0, "Adapters (0.5%)"), _cell(84.4, "Full fine-tuning")
PLAN = {"task": "text classification", "paper_model": "BERT-large", "paper_dataset": "GLUE",
        "experiments": [
            {"id": "adapters", "name": "Adapters", "recipe": None, "targets": [ADAPTERS], "metric": "accuracy",
             "claim": "adapters reach 84.0 on SST-2"},
            {"id": "full", "name": "Full fine-tuning", "recipe": "full", "targets": [FULL], "metric": "accuracy"}],
        "claims": [
            {"id": "C1", "text": "Adapters come within 0.4 points of full fine-tuning", "kind": "comparative",
             "experiments": ["adapters", "full"], "relation": "within", "margin": 1.0, "metric": "accuracy",
             "cells": [ADAPTERS, FULL], "source": "model"},
            {"id": "C2", "text": "Adapters reach 84.0 on SST-2", "kind": "absolute", "experiments": ["adapters"],
             "relation": None, "margin": 0.0, "metric": "accuracy", "cells": [ADAPTERS], "source": "model"}],
        "deviations": [{"what": "base model", "paper": "BERT-large", "ours": "all-MiniLM-L6-v2",
                        "reason": "offline machine"}]}


def _results(adapters: float, full: float) -> dict:
    return {e: {"metrics": {"accuracy": v}, "before": {}, "file": f"results/{e}/metrics.json", "info": {},
                "reproduces": {}} for e, v in (("adapters", adapters), ("full", full))}


def _report(tmp_path, adapters: float, full: float, plan: dict = PLAN) -> dict:
    cfg = RunConfig(run_id="r", runs_dir=tmp_path, paper_path=tmp_path / "paper.pdf", sandbox_backend="fake")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    results = _results(adapters, full)
    rep = {"ok": True, "returncode": 0, "summary": "succeeded", "start_time": 1.0, "results": results, "ignored": []}
    write_json(cfg.run_dir / "reproduction.json", rep)
    state = {"status": "done", "plan": plan, "reproduction": rep, "paper": {"title": "Adapters"},
             "loop": {"exit": "submitted", "turn": 0}}
    data = build_report_data(state, cfg, {"agent": "a", "judge": "j"})
    write_report(data, cfg.run_dir)
    return data


def test_numbers_that_support_the_comparative_claim_and_numbers_that_contradict_it_get_opposite_verdicts(tmp_path):
    good = _report(tmp_path / "good", adapters=0.801, full=0.805)
    bad = _report(tmp_path / "bad", adapters=0.61, full=0.70)
    g1, b1 = (next(c for c in d["paper_claims"] if c["id"] == "C1") for d in (good, bad))
    assert g1["verdict"] == "replicated" and "-0.4" in g1["arithmetic"]  # 80.1 - 80.5, on the paper's scale
    assert b1["verdict"] == "not replicated" and "-9" in b1["arithmetic"]
    status = {d_name: {e["id"]: e for e in d["experiments"]} for d_name, d in (("good", good), ("bad", bad))}
    assert status["good"]["adapters"]["status"] == "replicated"
    assert status["bad"]["adapters"]["status"] == "results differ" and "C1" in status["bad"]["adapters"]["reason"]
    # the experiment compared with is part of the claim too: not "replicated" beside a failed comparison
    assert status["bad"]["full"]["status"] == "results differ" and "within 0.4 points" in status["bad"]["full"]["reason"]
    # the absolute claim on a substituted setup: shown, never tested
    assert all(next(c for c in d["paper_claims"] if c["id"] == "C2")["verdict"] == NOT_COMPARABLE for d in (good, bad))


def test_every_results_file_present_but_the_claim_failing_is_replicated_nowhere(tmp_path):
    data = _report(tmp_path, adapters=0.61, full=0.70)
    assert set(data["reproduction"]["results"]) == {"adapters", "full"}  # both results files are there
    run = tmp_path / "r"
    saved = json.loads((run / "report.json").read_text())
    assert not [e for e in saved["experiments"] if e["status"] == "replicated"]
    assert not [c for c in saved["paper_claims"] if c["verdict"] == "replicated"]
    md = (run / "report.md").read_text()
    assert not re.search(r"\*\*replicated\*\*|\| replicated \|", md)
    html = (run / "report.html").read_text()
    assert not re.search(r">replicated<", html)
    assert "not replicated" in md and ">not replicated<" in html


def test_a_trend_is_tested_pair_by_pair_and_across_seeds():
    cells = [_cell(v, r) for v, r in ((90.0, "r=8"), (88.0, "r=4"), (80.0, "r=1"))]
    plan = {"experiments": [{"id": i, "name": i, "targets": [c]} for i, c in zip(("r8", "r4", "r1"), cells)]}
    claim = {"id": "C1", "text": "accuracy drops as the rank shrinks", "kind": "trend",
             "experiments": ["r8", "r4", "r1"], "relation": "decreasing", "margin": 0.0, "cells": cells}

    def runs(*seeds):
        return [{e: {"metrics": {"accuracy": v}} for e, v in zip(("r8", "r4", "r1"), s)} for s in seeds]

    held = verdict(claim, plan, runs((0.9, 0.85, 0.7), (0.91, 0.86, 0.72), (0.89, 0.84, 0.69)), substituted="x")
    assert held["verdict"] == "replicated" and "over 3 seeds" in held["arithmetic"]
    broken = verdict(claim, plan, runs((0.9, 0.92, 0.7), (0.9, 0.93, 0.71), (0.9, 0.925, 0.7)), substituted="x")
    assert broken["verdict"] == "not replicated" and "r8 - r4" in broken["arithmetic"]
    noisy = verdict(claim, plan, runs((0.9, 0.85, 0.7), (0.84, 0.88, 0.7)), substituted="x")
    assert noisy["verdict"] == "inconclusive"
    missing = verdict(claim, plan, runs((0.9, 0.85, 0.7))[:0] + [{"r8": {"metrics": {"accuracy": 0.9}}}],
                      substituted=None)
    assert missing["verdict"] == "inconclusive" and "r4, r1" in missing["why"]


def test_a_metric_the_results_file_maps_to_the_claim_is_read_first():
    claim = PLAN["claims"][0]
    res = {"adapters": {"metrics": {"accuracy": 0.5, "acc_sst2": 0.80}, "reproduces": {"acc_sst2": {"claim": "C1"}}},
           "full": {"metrics": {"accuracy": 0.805}}}
    v = verdict(claim, PLAN, [res], substituted="x")
    assert v["verdict"] == "replicated" and "mapped to C1" in v["found"]["adapters"]


@pytest.mark.parametrize("a,b,relation", [(84.0, 84.4, "within"), (80.0, 84.4, "greater")])
def test_a_plan_without_claims_gets_the_comparisons_its_numbers_make(a, b, relation):
    plan = {"experiments": [{"id": "x", "name": "X", "targets": [_cell(a, "X")]},
                            {"id": "y", "name": "Y", "targets": [_cell(b, "Y")]}]}
    (c,) = derive_claims(plan)
    assert (c["kind"], c["relation"]) == ("comparative", relation)
    assert c["experiments"] == (["x", "y"] if relation == "within" else ["y", "x"])  # the higher one first


def test_a_claim_on_two_test_sets_holds_only_where_each_column_does():
    """The variant paper's shape: "LoRA lifts macro-F1 over the untrained model on both shifted test
    sets", the untrained model an experiment with before-training targets only."""
    lora = [_cell(77.1, "LoRA", "Movie"), _cell(68.5, "LoRA", "Amazon")]
    untrained = [_cell(45.1, "Before fine-tuning", "Movie"), _cell(54.6, "Before fine-tuning", "Amazon")]
    plan = {"experiments": [{"id": "lora", "name": "LoRA", "targets": lora, "before_targets": untrained},
                            {"id": "before", "name": "Before fine-tuning", "targets": [], "before_targets": untrained}]}
    claim = {"id": "C1", "text": "LoRA lifts macro-F1 on both test sets", "kind": "comparative",
             "experiments": ["lora", "before"], "relation": "greater", "margin": 0.0, "metric": "f1",
             "cells": [lora[0], untrained[0], lora[1], untrained[1]]}
    refs = {"lora": {"f1_movie": {"target": "T1", "claim": "C1"}, "f1_amazon": {"target": "T2"}},
            "before": {"f1_movie": {"target": "B1", "claim": "C1"}, "f1_amazon": {"target": "B2"}}}

    def run(lora_after: tuple, untrained_scores: tuple) -> dict:
        m, u = dict(zip(("f1_movie", "f1_amazon"), lora_after)), dict(zip(("f1_movie", "f1_amazon"), untrained_scores))
        return {"lora": {"metrics": m, "before": u, "reproduces": refs["lora"]},
                "before": {"metrics": {}, "before": u, "reproduces": refs["before"]}}

    both = verdict(claim, plan, [run((0.75, 0.71), (0.45, 0.55)), run((0.76, 0.70), (0.46, 0.55))], substituted=None)
    assert both["verdict"] == "replicated" and [c["verdict"] for c in both["columns"]] == ["replicated"] * 2
    assert both["numbers"]["before [Amazon]"] == pytest.approx([55.0, 55.0])  # read from the untrained model's "before"
    # movie lifts, Amazon falls: the claim "on both" does not hold, though the metric mapped to C1 does
    one = verdict(claim, plan, [run((0.75, 0.50), (0.45, 0.55)), run((0.76, 0.50), (0.46, 0.55))], substituted=None)
    assert one["verdict"] == "not replicated"
    assert [c["verdict"] for c in one["columns"]] == ["replicated", "not replicated"] and "Amazon: not replicated" in one["why"]
    # no map, one bare number per experiment: it cannot stand for both columns — untested, not passed
    bare = {"lora": {"metrics": {"f1": 0.75}}, "before": {"metrics": {"f1": 0.45}}}
    untested = verdict(claim, plan, [bare], substituted=None)
    assert untested["verdict"] == "inconclusive" and "no reproduced number" in untested["columns"][0]["why"]


def test_two_models_that_learned_nothing_are_not_within_a_point_of_each_other():
    """Seen on the LoRA paper at 200 sentences and one epoch: both fell below their own
    before-training accuracy; "LoRA within 1 point of full fine-tuning" says nothing then."""
    claim = PLAN["claims"][0]

    def run(adapters, full, before):
        return {e: {"metrics": {"accuracy": v}, "before": {"accuracy": before}} for e, v in (("adapters", adapters),
                                                                                           ("full", full))}

    flat = verdict(claim, PLAN, [run(0.545, 0.55, 0.64)], substituted="x")
    assert flat["verdict"] == "inconclusive" and "neither experiment improved" in flat["why"] and "64 -> 54.5" in flat["why"]
    learned = verdict(claim, PLAN, [run(0.795, 0.80, 0.64)], substituted="x")
    assert learned["verdict"] == "replicated"
