"""Pure score aggregation over graded trees (no I/O, no model).

PaperBench's rule: a parent's score is the weight-averaged score of its children, and a
parent whose children weigh 0 in total scores 0. An invalid leaf (the judge never gave a
usable verdict) counts as 0, so the score is a lower bound; ``coverage`` says how much of
the tree, by effective weight, that bound rests on real verdicts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graders.rubric import GradedTaskNode

AGGREGATED = "Aggregated score from sub-tasks."


@dataclass(frozen=True)
class Aggregate:
    score: float
    coverage: float  # share of effective leaf weight graded validly, in [0, 1]
    leaves: int
    nodes: int
    invalid_leaves: int = 0
    # Per leaf category: weighted mean score of its leaves, and its share of the root's weight.
    by_category: dict[str, float] = field(default_factory=dict)
    category_weight: dict[str, float] = field(default_factory=dict)


def aggregate(node: GradedTaskNode) -> Aggregate:
    """Score, coverage and counts of a graded tree, recomputed from its leaves only.

    The effective weight of a leaf is the product of its normalised weights down the tree
    (weight / sum of sibling weights at each level), so leaf effective weights sum to 1.
    """
    counts = {"leaves": 0, "nodes": 0, "invalid": 0}
    covered = 0.0
    cat_score: dict[str, float] = {}
    cat_weight: dict[str, float] = {}

    def visit(n: GradedTaskNode, eff: float) -> float:
        nonlocal covered
        counts["nodes"] += 1
        subs = n.sub_tasks
        if not subs:
            counts["leaves"] += 1
            s = n.score if n.valid_score else 0.0
            if n.valid_score:
                covered += eff
            else:
                counts["invalid"] += 1
            cat = n.task_category or "Uncategorised"
            cat_weight[cat] = cat_weight.get(cat, 0.0) + eff
            cat_score[cat] = cat_score.get(cat, 0.0) + eff * s
            return s
        total = 0
        for c in subs:
            total += c.weight
        if total <= 0:
            for c in subs:  # still count the subtree, with no weight
                visit(c, 0.0)
            return 0.0
        acc = 0.0
        for c in subs:
            acc += c.weight * visit(c, eff * c.weight / total)
        return acc / total

    score = visit(node, 1.0)
    by_category = {c: (cat_score[c] / w if w > 0 else 0.0) for c, w in cat_weight.items()}
    return Aggregate(
        score=score,
        coverage=min(1.0, covered),
        leaves=counts["leaves"],
        nodes=counts["nodes"],
        invalid_leaves=counts["invalid"],
        by_category=by_category,
        category_weight=dict(cat_weight),
    )


def regrade(node: GradedTaskNode) -> GradedTaskNode:
    """A copy whose internal scores are recomputed from the leaves (leaves kept as they are).

    Internal nodes get ``valid_score=True`` and PaperBench's explanation, as upstream writes them.
    """
    if not node.sub_tasks:
        return node
    subs = [regrade(c) for c in node.sub_tasks]
    total = sum(c.weight for c in subs)
    score = 0.0
    if total > 0:
        score = sum(c.weight * (c.score if (c.valid_score or c.sub_tasks) else 0.0) for c in subs) / total
    return GradedTaskNode.from_task(
        node, score=score, valid_score=True,
        explanation=node.explanation or AGGREGATED, judge_metadata=node.judge_metadata, sub_tasks=subs,
    )


#: check kinds that state a fact of the run, never a result: graders.checks
FACT_KINDS = frozenset({"written", "configured"})


def split_by_decider(node: GradedTaskNode) -> dict:
    """The checked part and the judged part of a graded tree, each as the weighted pass rate of
    its own leaves (the tree's weights, the other part's leaves left out): the report leads with
    the checked part, so a weak judge's noise never hides what arithmetic decided."""
    def masked(keep) -> GradedTaskNode:
        def visit(n: GradedTaskNode) -> GradedTaskNode:
            if n.sub_tasks:
                return n.model_copy(update={"sub_tasks": [visit(c) for c in n.sub_tasks]})
            if keep(n):
                return n
            return n.model_copy(update={"valid_score": False, "score": 0.0})
        return visit(node)

    def checked(n: GradedTaskNode) -> bool:
        return (n.judge_metadata or {}).get("decided_by") == "check"

    def fact(n: GradedTaskNode) -> bool:  # a check of what the run did (wrote a number, set a setting)
        done = (n.judge_metadata or {}).get("check") or {}
        return checked(n) and all(p.get("kind") in FACT_KINDS for p in done.get("parts") or [done])

    out = {}
    for part, keep in (("checked", checked), ("judged", lambda n: not checked(n)),
                       ("checked_results", lambda n: checked(n) and not fact(n)), ("checked_facts", fact)):
        a = aggregate(masked(keep))
        leaves = [n for n in node.walk() if not n.sub_tasks and keep(n)]
        passed = sum(1 for n in leaves if n.valid_score and n.score == 1)
        out[part] = {"leaves": len(leaves), "passed": passed,
                     "inconclusive": sum(1 for n in leaves if any(
                         p.get("inconclusive") for p in ((n.judge_metadata or {}).get("check") or {}).get("parts") or [])),
                     "valid": sum(1 for n in leaves if n.valid_score),
                     "rate": round(a.score / a.coverage, 4) if a.coverage > 0 else None}
    return out
