"""An experiment's status follows from its checks and claims, never from a results file alone
(graders.stats.EXPERIMENT_STATUS): the same files get opposite statuses when the numbers support
or contradict the paper, and a setup that differs from the paper's makes absolute targets not
comparable."""
from __future__ import annotations

from agent.nodes.report import experiment_status
from graders.checks import Check, evaluate_all
from graders.stats import EXPERIMENT_STATUS

PLAN = {"experiments": [{"id": "lora", "name": "LoRA", "recipe": "lora"},
                        {"id": "head", "name": "Classifier head only", "recipe": "head"},
                        {"id": "full", "name": "Full fine-tuning", "recipe": "full"},
                        {"id": "adapters", "name": "Adapters", "recipe": None}],
        "deviations": []}
REP = {"ok": True, "start_time": 1.0, "summary": "exited 0", "ignored": []}
SCALED = [{"what": "training data size", "paper": "full training set", "ours": "first 200 training sentences",
           "reason": "scaled-down run"}]


def _results(lora: float, head: float) -> dict:
    return {e: {"metrics": {"accuracy": v}, "before": {"accuracy": 0.49}, "file": f"results/{e}/metrics.json"}
            for e, v in (("lora", lora), ("head", head))}


def _checks(results: dict) -> list[dict]:
    """The demo rubric's kinds of check: LoRA within 3 points of Table 1, LoRA beats head-only."""
    close = Check(leaf_id="l1", kind="close", experiment="lora", metric="accuracy",
                  paper={"value": 81.8, "text": "81.8", "table": "Table 1", "row": "LoRA", "column": "Acc", "page": 2})
    greater = Check(leaf_id="l2", kind="greater", experiment="lora", metric="accuracy",
                    other={"experiment": "head", "metric": "accuracy"})
    return [dict(evaluate_all([c], results), requirements=c.leaf_id) for c in (close, greater)]


def _status(plan: dict, results: dict, rep: dict = REP, loop: dict | None = None, claims=None) -> dict:
    return {e["id"]: e for e in experiment_status(plan, results, loop or {"exit": "submitted"}, rep,
                                                  _checks(results), claims)}


def test_numbers_that_support_the_paper_replicate_and_numbers_that_contradict_it_differ():
    good = _status(PLAN, _results(lora=0.82, head=0.71))
    bad = _status(PLAN, _results(lora=0.60, head=0.71))  # same files, LoRA far off and below head-only
    assert good["lora"]["status"] == "replicated" and "<= 3" in good["lora"]["reason"]
    assert bad["lora"]["status"] == "results differ" and "> 3" in bad["lora"]["reason"]
    assert "<= 0" in bad["lora"]["reason"]  # the comparative claim's arithmetic too
    # head has a results file but no check of its own: ran, not replicated
    assert good["head"]["status"] == bad["head"]["status"] == "ran, no comparable target"
    assert good["full"]["status"] == "not attempted" and good["adapters"]["status"] == "not attempted"
    assert all(e["status"] in EXPERIMENT_STATUS and e["reason"] for s in (good, bad) for e in s.values())


def test_every_results_file_present_with_failing_claims_is_replicated_nowhere():
    results = _results(lora=0.55, head=0.71)
    status = _status(PLAN, results)
    assert set(results) <= set(status)
    assert not any(e["status"] == "replicated" for e in status.values())


def test_a_substituted_setup_makes_absolute_targets_not_comparable_and_keeps_comparisons():
    plan = dict(PLAN, deviations=SCALED)
    # LoRA 20 points below the paper's absolute number, but above head-only as the paper says
    status = _status(plan, _results(lora=0.62, head=0.55))
    assert status["lora"]["status"] == "replicated", status["lora"]
    assert "> 0" in status["lora"]["reason"] and "81.8" not in status["lora"]["reason"]
    # with only the absolute check left, the scaled-down run has nothing comparable
    only_close = experiment_status(plan, _results(lora=0.62, head=0.55), {}, REP, _checks(_results(0.62, 0.55))[:1])
    lora = next(e for e in only_close if e["id"] == "lora")
    assert lora["status"] == "ran, no comparable target" and "not comparable" in lora["reason"]
    assert "training data size" in lora["reason"]


def test_a_claim_across_seeds_decides_too():
    claims = [{"experiment": "head", "claim": "head-only reaches 71.4", "comparative": False,
               "verdict": "inconclusive", "why": "the 95% interval [60, 80] is too wide"}]
    status = _status(PLAN, _results(lora=0.82, head=0.71), claims=claims)
    assert status["head"]["status"] == "inconclusive" and "too wide" in status["head"]["reason"]


def test_failed_attempts_are_told_apart_from_experiments_never_attempted():
    crashed = dict(REP, ok=False, summary="exited 1 after 3 s")
    status = _status(PLAN, {}, rep=crashed, loop={"exit": "submitted", "scaffolded_experiments": ["lora"]})
    assert status["lora"]["status"] == "failed" and "exited 1" in status["lora"]["reason"]
    stale = dict(REP, ignored=["results/head/metrics.json (written before the reproduction started)"])
    status = _status(PLAN, {}, rep=stale, loop={"exit": "steps", "exit_detail": "40 turns"})
    assert status["head"]["status"] == "failed" and "not produced by the reproduction" in status["head"]["reason"]
    assert status["full"]["status"] == "not attempted" and "40 turns" in status["full"]["reason"]


def test_a_check_that_the_run_wrote_its_number_replicates_nothing():
    """A generated Code Execution leaf checks that the run wrote each experiment's number: a fact of
    the run, passed for any number. It must not make the experiment 'replicated'."""
    results = _results(lora=0.40, head=0.71)
    written = [dict(evaluate_all([Check(leaf_id="e0", kind="written", experiment=e, metric="accuracy")], results),
                    requirements="e0") for e in ("lora", "head")]
    assert all(w["passed"] for w in written)
    status = {e["id"]: e for e in experiment_status(PLAN, results, {"exit": "submitted"}, REP, written)}
    assert status["lora"]["status"] == status["head"]["status"] == "ran, no comparable target"
    assert "no check or claim compares its numbers" in status["lora"]["reason"]
    # nor does a setup leaf decided by the config echo ("trains with learning rate 0.001")
    for e in ("lora", "head"):
        results[e]["info"] = {"config": {"method": e, "learning_rate": {e: 0.001}}}
    configured = [dict(evaluate_all([Check(leaf_id="s0", kind="configured", experiment=e, metric="learning_rate",
                                           setting=0.001)], results), requirements="s0") for e in ("lora", "head")]
    assert all(c["passed"] and not c["undecided"] for c in configured)
    status = {e["id"]: e for e in experiment_status(PLAN, results, {"exit": "submitted"}, REP, configured)}
    assert status["lora"]["status"] == status["head"]["status"] == "ran, no comparable target"


def test_a_ranking_of_two_models_that_learned_nothing_is_inconclusive_not_a_result():
    """Seen on the adapters paper at 200 sentences: both models fell from 52.5 to 48, and the
    generated check "full fine-tuning beats adapters" read 0.48 - 0.48 = 0 <= 0, so full
    fine-tuning was "results differ"; on the LoRA paper 0.56 - 0.54 > 0 passed on two collapsed models."""
    ranking = Check(leaf_id="c0", kind="greater", experiment="lora", metric="accuracy", learned=True,
                    other={"experiment": "head", "metric": "accuracy"})
    collapsed = _results(lora=0.46, head=0.45)  # both below their 0.49 start
    done = evaluate_all([ranking], collapsed)
    assert not done["passed"] and done["parts"][0]["inconclusive"] and "learned nothing" in done["arithmetic"]
    status = {e["id"]: e for e in experiment_status(PLAN, collapsed, {"exit": "submitted"}, REP,
                                                    [dict(done, requirements="c0")])}
    assert status["lora"]["status"] == "inconclusive" and status["head"]["status"] != "results differ"
    assert "lora: 0.49 -> 0.46, head: 0.49 -> 0.45" in status["lora"]["reason"]
    # seen on the adapters paper: the check's metric is "score", the files say "accuracy" and map it by
    # their reproduces map; the before numbers are read under the key the end was read from
    scored = Check.model_validate({**ranking.model_dump(), "metric": "score",
                                   "other": {"experiment": "head", "metric": "score"}})
    for r in collapsed.values():
        r["reproduces"] = {"accuracy": {"target": "T1", "cell": {"value": 56.9, "column": "CoLA", "metric": "score"}}}
    done = evaluate_all([scored], collapsed)
    assert done["parts"][0].get("inconclusive"), done["arithmetic"]
    learned = evaluate_all([ranking], _results(lora=0.60, head=0.45))  # one of them learned: a ranking
    assert learned["passed"] and not learned["parts"][0].get("inconclusive")


def test_the_verdict_leads_with_the_claims_and_result_checks_not_the_facts_of_the_run():
    """Seen on the LoRA paper's capable run: "11/12 checked leaves pass" led the report, although
    9 were settings and 2 that the run wrote its numbers; its one result check was inconclusive and
    neither claim replicated."""
    from graders.aggregate import split_by_decider
    from graders.report import _verdict
    from graders.rubric import GradedTaskNode

    def leaf(i, kind, passed, inconclusive=False):
        part = {"kind": kind, "passed": passed, **({"inconclusive": True} if inconclusive else {})}
        return GradedTaskNode(id=f"l{i}", requirements=f"leaf {i}", weight=1, score=float(passed), valid_score=True,
                              sub_tasks=[], judge_metadata={"decided_by": "check", "check": {**part, "parts": [part]}})

    leaves = [leaf(i, "configured", True) for i in range(9)] + [leaf(9, "written", True), leaf(10, "written", True),
                                                                  leaf(11, "greater", False, inconclusive=True)]
    tree = GradedTaskNode(id="root", requirements="r", weight=1, score=11 / 12, valid_score=True, sub_tasks=leaves)
    parts = split_by_decider(tree)
    assert parts["checked_results"] == {"leaves": 1, "passed": 0, "inconclusive": 1, "valid": 1, "rate": 0.0}
    assert parts["checked_facts"]["passed"] == parts["checked_facts"]["leaves"] == 11
    data = {"grade": {"parts": parts, "score": 0.4, "coverage": 1.0}, "models": {"agent": "any"},
            "paper_claims": [{"verdict": "inconclusive"}, {"verdict": "not comparable"}]}
    text = _verdict(data)
    assert text.startswith("Claims: 1 inconclusive, 1 not comparable. Result checks: 0/1 pass, 1 inconclusive. "
                           "Facts of the run (it wrote its numbers, set its settings): 11/11 hold."), text
    assert "11/12" not in text
