"""Meta-evaluation of a judge: macro-F1 of its leaf grades against human-graded trees.

The human trees are PaperBench's ``judge_eval/<paper>/expected_result.json``. A judge's grades
for the same submission are a graded tree over the same rubric. Leaves are matched by id (and
occurrence, for rubrics that reuse ids). An invalid or missing predicted leaf counts as wrong
for both classes, so a judge cannot gain F1 by abstaining.
"""
from __future__ import annotations

import json
import os
import random
import time
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


# ---------------------------------------------------------------- the labelled mutation set
LOW_CONFIDENCE_F1 = 0.7  # a judge measured below this gets its verdicts marked low-confidence
SCORES_DIR = Path(__file__).resolve().parent.parent / "papers" / "judge-eval" / "scores"


def scores_dir() -> Path:
    """Where measurements are stored, per model: $REPRO_JUDGE_EVAL_DIR or ~/.local/share/repro/judge-eval."""
    env = os.environ.get("REPRO_JUDGE_EVAL_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "repro" / "judge-eval"


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:100] or "model"


def quality(model: str) -> dict | None:
    """The stored measurement of a judge model (the user's own first, then the one shipped with
    the project for the embedded model), or None: never measured."""
    for d in (scores_dir(), SCORES_DIR):
        p = d / f"{_slug(model)}.json"
        if p.is_file():
            data = json.loads(p.read_text())
            data["low_confidence"] = data.get("f1") is not None and data["f1"] < LOW_CONFIDENCE_F1
            return data
    return None


def measure_on_mutations(model_for, cases, *, config=None, samples: int = 1) -> dict:
    """Grade every case with the judge ``model_for(case)`` and score its leaf verdicts against the
    labels. Leaves that a rule decides without the model (no fresh result file, no reproduction)
    are not the model's verdicts: they are counted apart, never in its F1."""
    from graders.judge import JudgeConfig, grade_submission
    from graders.rubric import load_rubric

    truth, pred, per_case, rule_decided = [], [], [], 0
    usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for case in cases:
        rubric = load_rubric(case.paper_dir / "rubric.json")
        cfg = config or JudgeConfig()
        if samples > 1:
            import dataclasses

            cfg = dataclasses.replace(cfg, samples=samples)
        graded = grade_submission(rubric, submission_dir=case.submission, reproduction_dir=case.reproduction,
                                  start_time=case.start_time, paper_text=_paper_text(case.paper_dir),
                                  model=model_for(case), config=cfg)
        t, p = [], []
        for leaf in graded.walk():
            if leaf.sub_tasks:
                continue
            if (leaf.judge_metadata or {}).get("rule"):
                rule_decided += 1
                continue
            t.append(case.labels[leaf.id])
            p.append((1 if leaf.score >= 0.5 else 0) if leaf.valid_score else INVALID)
        f1, _ = macro_f1(t, p)
        per_case.append({"case": case.name, "leaves": len(t), "f1": round(f1, 4),
                         "wrong": sum(1 for a, b in zip(t, p) if a != b)})
        truth += t
        pred += p
        meta = graded.judge_metadata or {}
        for k in usage:
            usage[k] += meta.get(k, 0)
    f1, per = macro_f1(truth, pred)
    return {"f1": round(f1, 4), "per_class_f1": {str(k): round(v, 4) for k, v in per.items()}, "n": len(truth),
            "accuracy": round(sum(1 for a, b in zip(truth, pred) if a == b) / max(1, len(truth)), 4),
            "invalid": sum(1 for x in pred if x == INVALID), "rule_decided": rule_decided, "cases": per_case,
            "labels": {"0": truth.count(0), "1": truth.count(1)},
            "usage": usage, "samples": samples, "set": "mutations (papers/judge-eval)"}


def _paper_text(paper_dir: Path) -> str:
    from papers import load_paper

    return load_paper(paper_dir / "paper.pdf").text(max_chars=60_000)


def store(model: str, result: dict, directory: Path | None = None) -> Path:
    from graders.files import write_json

    path = (directory or scores_dir()) / f"{_slug(model)}.json"
    write_json(path, {"model": model, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), **result})
    return path
