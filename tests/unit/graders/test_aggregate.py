"""Aggregation: parity with the human-graded trees, properties (J12), speed."""
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from graders.aggregate import aggregate, regrade
from graders.rubric import GradedTaskNode, TaskNode, load_graded, load_rubric


def _assert_same_scores(a: GradedTaskNode, b: GradedTaskNode) -> int:
    assert abs(a.score - b.score) <= 1e-9, (a.id, a.score, b.score)
    return 1 + sum(_assert_same_scores(x, y) for x, y in zip(a.sub_tasks, b.sub_tasks, strict=True))


def test_parity_with_human_graded_trees(paperbench_dir):
    checked = 0
    for f in sorted((paperbench_dir / "judge_eval").glob("*/expected_result.json")):
        tree = load_graded(f)
        checked += _assert_same_scores(tree, regrade(tree))
        assert abs(aggregate(tree).score - tree.score) <= 1e-9
    assert checked == 3531  # every node of the 5 trees


def test_parity_on_bundled_sample(fixtures_dir):
    tree = load_graded(fixtures_dir / "paperbench/judge_eval/semantic-self-consistency/expected_result.json")
    _assert_same_scores(tree, regrade(tree))
    agg = aggregate(tree)
    assert abs(agg.score - 0.91) < 1e-9 and agg.leaves == 79 and agg.nodes == 102
    assert abs(agg.coverage - 1.0) < 1e-9


def _leaf(i, score, valid=True, weight=1, cat="Code Development"):
    return GradedTaskNode.from_task(TaskNode.model_construct(id=f"l{i}", requirements="r", weight=weight,
                                                             task_category=cat, sub_tasks=[]),
                                    score=score, valid_score=valid, explanation="")


def _node(nid, weight, subs):
    return GradedTaskNode.from_task(TaskNode.model_construct(id=nid, requirements="r", weight=weight, sub_tasks=[]),
                                    score=0.0, valid_score=True, explanation="", sub_tasks=subs)


def test_invalid_leaf_counts_zero_and_lowers_coverage():
    # root: A (w=3) -> [l0 (1, valid), l1 (1, INVALID, score field 1)] ; B (w=1) -> l2 (1, valid)
    tree = _node("root", 1, [_node("A", 3, [_leaf(0, 1.0), _leaf(1, 1.0, valid=False)]),
                             _node("B", 1, [_leaf(2, 1.0, cat="Result Analysis")])])
    agg = aggregate(tree)
    assert abs(agg.score - (0.75 * 0.5 + 0.25 * 1.0)) < 1e-12
    assert abs(agg.coverage - (1 - 0.75 * 0.5)) < 1e-12
    assert agg.invalid_leaves == 1 and agg.leaves == 3 and agg.nodes == 6
    assert abs(agg.by_category["Code Development"] - 0.5) < 1e-12
    assert abs(agg.category_weight["Result Analysis"] - 0.25) < 1e-12
    assert abs(regrade(tree).score - agg.score) < 1e-12


# ---------------------------------------------------------------- hypothesis (J12)
@st.composite
def trees(draw, depth=0):
    if depth >= 3 or draw(st.booleans()) and depth > 0:
        return ("leaf", draw(st.integers(0, 5)), draw(st.sampled_from([0.0, 1.0])), draw(st.booleans()))
    n = draw(st.integers(1, 4))
    children = [draw(trees(depth=depth + 1)) for _ in range(n)]
    weights = [c[1] for c in children]
    if sum(weights) == 0:  # valid rubrics never have all-zero siblings
        children[0] = (children[0][0], 1) + children[0][2:]
    return ("node", draw(st.integers(1, 5)), children)


def build(spec, counter=None, scale=None, flip=None, factor=1):
    """``scale(parent_index)`` multiplies the weights of that parent's children (one sibling set)."""
    counter = counter if counter is not None else [0]
    if spec[0] == "leaf":
        _, w, score, valid = spec
        i = counter[0]
        counter[0] += 1
        if flip is not None and i == flip:
            score = 1.0
        return _leaf(i, score, valid, weight=w * factor)
    _, w, children = spec
    me = counter[0]
    k = scale(me) if scale else 1
    return _node(f"n{me}", w * factor, [build(c, counter, scale, flip, k) for c in children])


@settings(max_examples=150, deadline=None)
@given(trees())
def test_score_in_unit_interval_and_coverage_matches_brute_force(spec):
    tree = build(spec)
    agg = aggregate(tree)
    assert 0.0 <= agg.score <= 1.0 and 0.0 <= agg.coverage <= 1.0

    def eff(node, w):  # effective weight of each leaf, by brute force
        if not node.sub_tasks:
            return [(node, w)]
        total = sum(c.weight for c in node.sub_tasks)
        return [x for c in node.sub_tasks for x in eff(c, w * c.weight / total)]

    pairs = eff(tree, 1.0)
    assert abs(sum(w for _, w in pairs) - 1.0) < 1e-9
    assert abs(agg.coverage - sum(w for n, w in pairs if n.valid_score)) < 1e-9
    assert abs(agg.score - sum(w * n.score for n, w in pairs if n.valid_score)) < 1e-9


@settings(max_examples=150, deadline=None)
@given(trees(), st.integers(0, 30))
def test_monotone_in_leaf_scores(spec, which):
    base = aggregate(build(spec)).score
    n_leaves = aggregate(build(spec)).leaves
    raised = aggregate(build(spec, flip=which % n_leaves)).score
    assert raised >= base - 1e-12


@settings(max_examples=100, deadline=None)
@given(trees(), st.integers(2, 1000), st.integers(1, 7))
def test_invariant_to_scaling_sibling_weights(spec, k, step):
    a = aggregate(build(spec))
    b = aggregate(build(spec, scale=lambda parent: k + step * parent))  # a different factor per sibling set
    assert abs(a.score - b.score) < 1e-9 and abs(a.coverage - b.coverage) < 1e-9


def test_aggregating_all_23_rubrics_is_fast(paperbench_dir):
    def graded(n: TaskNode, i=[0]) -> GradedTaskNode:
        i[0] += 1
        return GradedTaskNode.from_task(n, score=float(i[0] % 2), valid_score=i[0] % 7 != 0, explanation="",
                                        sub_tasks=[graded(c) for c in n.sub_tasks])
    trees_ = [graded(load_rubric(f, allow_duplicate_ids=True))
              for f in sorted((paperbench_dir / "rubrics").glob("*/rubric.json"))]
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        results = [aggregate(t_) for t_ in trees_]
        best = min(best, time.perf_counter() - t)
    assert sum(r.leaves for r in results) == 8921
    assert best < 0.050, f"{best * 1000:.1f} ms"
