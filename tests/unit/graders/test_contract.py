"""The contract can say what reproduces what: a results file's ``reproduces`` map (metric -> the
plan's target and claim), validated with clear errors, shown to the coding agent, and read first
wherever a reproduced number is joined to the paper's."""
from __future__ import annotations

import json

import pytest

from agent.plan import Plan
from agent.loop.context import shown_targets
from agent.prompts import render
from graders.contract import (CONTRACT_TEXT, ContractError, claim_ids, mapped_metric, parse_result, plan_ids,
                              read_results, target_ids)


def _t(value: float, column: str, row: str = "Adapters") -> dict:
    return {"value": value, "text": f"{value:.1f}", "table": "Table 1", "row": row, "column": column, "page": 3,
            "metric": "accuracy"}


PLAN = {"experiments": [
    {"id": "adapters", "name": "Adapters", "claim": "adapters come within 0.4 points of full fine-tuning",
     "targets": [_t(80.0, "Frozen"), _t(84.0, "Full")], "before_targets": [_t(50.0, "Frozen", "Before")]},
    {"id": "full", "name": "Full fine-tuning", "claim": "", "targets": [_t(84.4, "Full", "Full fine-tuning")]},
    {"id": "head", "name": "Head only", "claim": "the head alone is far behind", "targets": []}]}
# one number per configuration of the paper's table: the word join cannot tell which is which
FILE = {"metrics": {"accuracy_frozen": 0.61, "accuracy_full": 0.69}, "before": {"accuracy_frozen": 0.5},
        "reproduces": {"accuracy_frozen": {"target": "T1", "claim": "C1"}, "accuracy_full": {"target": "T2"}}}


def _write(root, exp: str, data: dict):
    path = root / "results" / exp / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_ids_are_the_plans_in_order():
    assert list(target_ids(PLAN["experiments"][0])) == ["T1", "T2", "B1"]
    assert target_ids(PLAN["experiments"][0])["T2"][0]["column"] == "Full"
    # each experiment's claim sentence, then the comparison the paper's numbers make (one column)
    claims = claim_ids(PLAN)
    assert {k: v["experiment"] for k, v in claims.items()} == {"C1": "adapters", "C2": "head", "C3": "adapters"}
    # 84.0 against 84.4 in one column: the paper's comparison is "within a point", not a ranking
    assert (claims["C3"]["kind"], claims["C3"]["experiments"], claims["C3"]["relation"], claims["C3"]["margin"]) == \
        ("comparative", ["adapters", "full"], "within", 1.0)


@pytest.mark.parametrize("reproduces,error", [
    ({"accuracy": {"target": "T1"}}, "reproduces.accuracy: 'accuracy' is not a key of 'metrics' (its keys: "
                                     "accuracy_frozen, accuracy_full)"),
    ({"accuracy_full": {"target": "B1"}}, "'accuracy_full' is not a key of 'before'"),
    ({"accuracy_frozen": {"target": "T1"}, "accuracy_full": {"target": "T1"}},
     "target T1 is given to both 'accuracy_frozen' and 'accuracy_full'"),
    ({"accuracy_full": {"target": "row 2"}}, "'row 2' is not a target id"),
    ({"accuracy_full": {}}, "give a target, a claim or both"),
    ({"accuracy_full": {"target": "T1", "column": "Full"}}, "Extra inputs are not permitted"),
])
def test_a_wrong_map_is_a_clear_error(tmp_path, reproduces, error):
    path = _write(tmp_path, "adapters", {**FILE, "reproduces": reproduces})
    with pytest.raises(ContractError) as exc:
        parse_result(path)
    assert error in str(exc.value) and str(path) in str(exc.value)


def test_ids_the_plan_lacks_are_errors_when_the_plan_is_known(tmp_path):
    path = _write(tmp_path, "adapters", {**FILE, "reproduces": {"accuracy_full": {"target": "T3", "claim": "C9"}}})
    assert parse_result(path).reproduces["accuracy_full"].target == "T3"  # without the plan: nothing to check against
    with pytest.raises(ContractError, match=r"'T3' is not a target of this experiment in the plan \(its targets: "
                                            r"T1, T2, B1\)"):
        parse_result(path, plan_ids(PLAN, "adapters"))
    with pytest.raises(ContractError, match=r"'C9' is not a claim of the plan \(its claims: C1, C2, C3\)"):
        parse_result(_write(tmp_path, "adapters", {**FILE, "reproduces": {"accuracy_full": {"claim": "C9"}}}),
                     plan_ids(PLAN, "adapters"))


def test_a_wrong_map_costs_the_map_not_the_numbers(tmp_path):
    _write(tmp_path, "adapters", {**FILE, "reproduces": {"accuracy_full": {"target": "T3"}}})
    results, ignored = read_results(tmp_path, 0.0, PLAN)
    r = results["adapters"]
    assert ignored == [] and r["metrics"] == FILE["metrics"] and r["reproduces"] == {}
    assert r["mapping_error"].startswith("results/adapters/metrics.json: reproduces.accuracy_full.target: 'T3'")
    _write(tmp_path, "adapters", {**FILE, "reproduces": "all of them"})  # not even an object
    r = read_results(tmp_path, 0.0)[0]["adapters"]
    assert r["metrics"] == FILE["metrics"] and "reproduces" in r["mapping_error"]


def test_the_map_is_read_first_and_the_word_join_stays_the_fallback(tmp_path):
    _write(tmp_path, "adapters", FILE)
    r = read_results(tmp_path, 0.0, PLAN)[0]["adapters"]
    assert r["reproduces"]["accuracy_frozen"]["cell"]["column"] == "Frozen"
    assert r["reproduces"]["accuracy_frozen"]["claim_text"].startswith("adapters come within")
    assert mapped_metric(r, target="T2") == ("accuracy_full", 0.69)
    assert mapped_metric(r, cell=_t(80.0, "Frozen")) == ("accuracy_frozen", 0.61)
    assert mapped_metric(r, cell=_t(84.0, "Full")) == ("accuracy_full", 0.69)
    assert mapped_metric(r, name="accuracy") is None  # two mapped accuracy targets: the name alone cannot tell
    assert mapped_metric(r, target="B1", where="before") is None  # nothing mapped to it: the caller falls back
    plain = {**FILE}
    plain.pop("reproduces")
    _write(tmp_path, "adapters", plain)
    r = read_results(tmp_path, 0.0, PLAN)[0]["adapters"]
    assert r["reproduces"] == {} and mapped_metric(r, target="T1") is None


def test_the_coding_agent_is_shown_the_map_and_the_ids_it_names():
    assert '"reproduces": {"<metric>": {"target": "T2", "claim": "C1"}' in CONTRACT_TEXT
    plan = Plan.model_validate({"task": "t", "paper_model": "m", "paper_dataset": "d", "experiments": [
        {**e, "claim": e["claim"] or None} for e in PLAN["experiments"]]})
    kw = dict(title="T", abstract="A", experiments=plan.experiments, deviations=[], hyper="h", recipes="r",
              addendum="", budget="b", model="m", dataset="d", claims=claim_ids(PLAN), shown=shown_targets(plan))
    text = render("agent_task.j2", brief=False, **kw)
    for eid in ("adapters", "full"):
        exp = next(e for e in PLAN["experiments"] if e["id"] == eid)
        for tid, (t, where) in target_ids(exp).items():
            assert f'{tid}: paper{", before training:" if where == "before" else ""} accuracy {t["text"]} ' \
                   f'(Table 1, row "{t["row"]}", column "{t["column"]}"' in text
    for cid, c in claim_ids(PLAN).items():  # each with its kind, a comparison with what it compares
        assert f"- {cid} [{c['kind']}" in text and f"]: {c['text']}" in text
    assert "- C3 [comparative: adapters vs full within (margin 1.0)]: " in text
    assert "T1:" not in render("agent_task.j2", brief=True, **kw)  # the guided weak model's task is unchanged
