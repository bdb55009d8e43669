"""Meta-evaluation of a judge: macro-F1 of its leaf grades against human-graded trees.

The human trees are PaperBench's ``judge_eval/<paper>/expected_result.json``. A judge's grades
for the same submission are a graded tree over the same rubric. Leaves are matched by id (and
occurrence, for rubrics that reuse ids). An invalid or missing predicted leaf counts as wrong
for both classes, so a judge cannot gain F1 by abstaining.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from graders.aggregate import regrade
from graders.rubric import GradedTaskNode, load_graded

DEFAULT_DATA = Path("/work/shared/paperbench/judge_eval")
INVALID = -1


def default_data_dir() -> Path:
    env = os.environ.get("REPRO_PAPERBENCH_DIR")
    return Path(env) / "judge_eval" if env else DEFAULT_DATA


@dataclass
class JudgeEvalResult:
    name: str
    leaves: int
    f1: float  # macro over the classes {0, 1}
    accuracy: float
    invalid: int
    per_class_f1: dict[int, float] = field(default_factory=dict)


def leaf_labels(tree: GradedTaskNode) -> dict[tuple[str, int], int]:
    """(leaf id, occurrence) -> 1/0, or INVALID when the grade is not valid."""
    out: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    for node in tree.walk():
        if node.sub_tasks:
            continue
        k = counts.get(node.id, 0)
        counts[node.id] = k + 1
        label = (1 if node.score >= 0.5 else 0) if node.valid_score else INVALID
        out[(node.id, k)] = label
    return out


def macro_f1(truth: list[int], pred: list[int], classes: tuple[int, ...] = (0, 1)) -> tuple[float, dict[int, float]]:
    """Mean F1 over the classes that occur in the truth or the predictions."""
    per: dict[int, float] = {}
    for c in classes:
        tp = sum(1 for t, p in zip(truth, pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(truth, pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(truth, pred) if t == c and p != c)
        if tp + fp + fn == 0:
            continue
        per[c] = 2 * tp / (2 * tp + fp + fn)
    return (sum(per.values()) / len(per) if per else 1.0), per


def evaluate(expected: GradedTaskNode, predicted: GradedTaskNode, name: str = "") -> JudgeEvalResult:
    truth = leaf_labels(expected)
    got = leaf_labels(predicted)
    keys = list(truth)
    t = [truth[k] for k in keys]
    p = [got.get(k, INVALID) for k in keys]
    f1, per = macro_f1(t, p)
    acc = sum(1 for a, b in zip(t, p) if a == b) / len(keys) if keys else 1.0
    return JudgeEvalResult(name, len(keys), f1, acc, sum(1 for x in p if x == INVALID), per)


def load_cases(data_dir: Path) -> dict[str, GradedTaskNode]:
    return {p.parent.name: load_graded(p, allow_duplicate_ids=True)
            for p in sorted(Path(data_dir).glob("*/expected_result.json"))}


# ---------------------------------------------------------------- baseline judges
def relabel(expected: GradedTaskNode, label_of) -> GradedTaskNode:
    """A copy of ``expected`` whose leaves get ``label_of(leaf)`` (0/1), internal scores recomputed."""
    def copy(n: GradedTaskNode) -> GradedTaskNode:
        if n.sub_tasks:
            return GradedTaskNode.from_task(n, score=0.0, valid_score=True, explanation="",
                                            sub_tasks=[copy(c) for c in n.sub_tasks])
        return GradedTaskNode.from_task(n, score=float(label_of(n)), valid_score=True, explanation="baseline")
    return regrade(copy(expected))


def oracle_judge(expected: GradedTaskNode) -> GradedTaskNode:
    return relabel(expected, lambda n: 1 if (n.valid_score and n.score >= 0.5) else 0)


def random_judge(expected: GradedTaskNode, seed: int = 0) -> GradedTaskNode:
    rng = random.Random(seed)
    return relabel(expected, lambda n: rng.randint(0, 1))


def constant_judge(expected: GradedTaskNode, value: int) -> GradedTaskNode:
    return relabel(expected, lambda n: value)
