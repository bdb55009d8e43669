"""Judge meta-evaluation: oracle F1 = 1, random ~ 0.5, abstention is not rewarded."""
from graders.judge_eval import constant_judge, evaluate, load_cases, macro_f1, oracle_judge, random_judge
from graders.rubric import GradedTaskNode


def test_macro_f1_by_hand():
    f1, per = macro_f1([1, 1, 0, 0], [1, 0, 0, 0])
    assert abs(per[1] - 2 / 3) < 1e-12 and abs(per[0] - 0.8) < 1e-12 and abs(f1 - (2 / 3 + 0.8) / 2) < 1e-12


def test_oracle_and_random_on_all_human_trees(paperbench_dir):
    cases = load_cases(paperbench_dir / "judge_eval")
    assert len(cases) == 5
    for name, expected in cases.items():
        assert evaluate(expected, oracle_judge(expected), name).f1 == 1.0
    rand = [evaluate(e, random_judge(e, seed=s)) for e in cases.values() for s in range(3)]
    mean = sum(r.f1 for r in rand) / len(rand)
    assert 0.42 < mean < 0.58, mean
    pinn = evaluate(cases["pinn"], random_judge(cases["pinn"], seed=1))  # 1963 leaves: tight
    assert abs(pinn.f1 - 0.5) < 0.05


def test_constant_and_invalid_predictions(fixtures_dir):
    cases = load_cases(fixtures_dir / "paperbench" / "judge_eval")
    expected = cases["semantic-self-consistency"]
    ones = evaluate(expected, constant_judge(expected, 1))
    assert ones.f1 < 0.5 and ones.per_class_f1[0] == 0.0
    invalid = expected.model_copy(deep=True)
    for n in invalid.walk():
        if not n.sub_tasks:
            n.valid_score = False
    res = evaluate(expected, invalid)
    assert res.f1 == 0.0 and res.invalid == res.leaves == 79
    assert isinstance(oracle_judge(expected), GradedTaskNode)


# ---------------------------------------------------------------- the labelled mutation set
def _requirements(case) -> dict[str, str]:
    import json

    out, stack = {}, [json.loads((case.paper_dir / "rubric.json").read_text())]
    while stack:
        n = stack.pop()
        stack.extend(n["sub_tasks"])
        if not n["sub_tasks"]:
            out[" ".join(n["requirements"].split())] = n["id"]
    return out


def test_the_stored_set_is_what_the_builder_makes(tmp_path):
    from graders.mutations import SET_DIR, build

    build(tmp_path)
    stored = sorted(p.relative_to(SET_DIR) for p in SET_DIR.rglob("*") if p.is_file() and "scores" not in p.parts)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert stored == built
    for rel in built:
        assert (SET_DIR / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_a_perfect_judge_scores_f1_1_and_a_constant_judge_what_the_class_balance_implies(doubles):
    from graders.judge_eval import macro_f1, measure_on_mutations
    from graders.mutations import load_cases

    cases = load_cases()
    assert len(cases) == 7 and sum(v == 0 for c in cases for v in c.labels.values()) == 20

    def perfect(case):
        by_req = _requirements(case)
        return doubles.RuleJudge(lambda req, data: case.labels[by_req[" ".join(req.split())]], name="perfect")

    got = measure_on_mutations(perfect, cases)
    assert got["f1"] == 1.0 and got["invalid"] == 0
    assert got["rule_decided"] >= 6 and got["n"] + got["rule_decided"] == 7 * 21
    # the forged case's result leaves (and every leaf a rule decides) are not the model's verdicts
    ones = measure_on_mutations(lambda case: doubles.RuleJudge(lambda r, d: 1, name="ones"), cases)
    n0, n1 = ones["labels"]["0"], ones["labels"]["1"]
    assert (n0, n1) == (got["labels"]["0"], got["labels"]["1"]) and n0 + n1 == got["n"]
    # always "pass": class 1's F1 is 2*n1/(2*n1+n0), class 0's is 0 -> macro-F1 is half of class 1's
    assert ones["f1"] == round((2 * n1 / (2 * n1 + n0)) / 2, 4) and 0.4 < ones["f1"] < 0.5
    zeros = measure_on_mutations(lambda case: doubles.RuleJudge(lambda r, d: 0, name="zeros"), cases)
    assert zeros["f1"] == round((2 * n0 / (2 * n0 + n1)) / 2, 4) and zeros["f1"] < 0.2
