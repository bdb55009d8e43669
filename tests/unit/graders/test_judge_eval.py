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
