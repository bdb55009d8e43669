"""PaperBench rubric trees: pydantic models, validation at load, lossless save.

The JSON layout is PaperBench's own (openai/preparedness ``paperbench/data``): a rubric
node has ``id, requirements, weight, sub_tasks, task_category, finegrained_task_category``
and a graded node ``id, requirements, weight, score, valid_score, task_category,
explanation, judge_metadata, sub_tasks``. Keys are written in exactly that order with
``json.dumps(indent=4)`` (ASCII-escaped), so loading and saving an upstream file gives
back the same bytes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

TASK_CATEGORIES = ("Code Development", "Code Execution", "Result Analysis")
FINEGRAINED_CATEGORIES = (
    "Environment & Infrastructure Setup",
    "Dataset and Model Acquisition",
    "Data Processing & Preparation",
    "Method Implementation",
    "Experimental Setup",
    "Evaluation, Metrics & Benchmarking",
    "Logging, Analysis & Presentation",
)
# The deepest upstream rubric has 9 levels below the root; anything far deeper is
# generated garbage or an attack on recursive code.
MAX_DEPTH = 16


class RubricError(ValueError):
    """A rubric (or graded tree) is malformed. The message names the offending node."""


class TaskNode(BaseModel):
    # strict: a weight of "2" or a score of "1" is an error, not something to coerce.
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    requirements: str
    weight: int | float
    sub_tasks: list["TaskNode"] = []
    task_category: str | None = None
    finegrained_task_category: str | None = None

    @property
    def is_leaf(self) -> bool:
        return not self.sub_tasks

    def walk(self) -> Iterator["TaskNode"]:
        """Pre-order, iterative (trees can be thousands of nodes)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.sub_tasks))

    def leaves(self) -> list["TaskNode"]:
        return [n for n in self.walk() if not n.sub_tasks]

    def find(self, node_id: str) -> "TaskNode | None":
        return next((n for n in self.walk() if n.id == node_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requirements": self.requirements,
            "weight": self.weight,
            "sub_tasks": [c.to_dict() for c in self.sub_tasks],
            "task_category": self.task_category,
            "finegrained_task_category": self.finegrained_task_category,
        }


class GradedTaskNode(TaskNode):
    sub_tasks: list["GradedTaskNode"] = []
    score: float
    # bool upstream, except 362 nodes of judge_eval/pinn written as 1.0: kept as read (lossless).
    valid_score: bool | float
    explanation: str = ""
    judge_metadata: Any = None

    @field_validator("valid_score")
    @classmethod
    def _zero_or_one(cls, v: bool | float) -> bool | float:
        if not isinstance(v, bool) and v not in (0.0, 1.0):
            raise ValueError("valid_score must be true/false (or 1.0/0.0)")
        return v

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "requirements": self.requirements,
            "weight": self.weight,
            "score": self.score,
            "valid_score": self.valid_score,
            "task_category": self.task_category,
            "explanation": self.explanation,
            "judge_metadata": self.judge_metadata,
            "sub_tasks": [c.to_dict() for c in self.sub_tasks],
        }
        # Upstream graded files have no finegrained key; keep it only when we know one.
        if self.finegrained_task_category is not None:
            out["finegrained_task_category"] = self.finegrained_task_category
        return out

    @classmethod
    def from_task(
        cls, task: TaskNode, *, score: float, valid_score: bool, explanation: str,
        judge_metadata: Any = None, sub_tasks: list["GradedTaskNode"] | None = None,
    ) -> "GradedTaskNode":
        return cls.model_construct(
            id=task.id, requirements=task.requirements, weight=task.weight,
            task_category=task.task_category, finegrained_task_category=task.finegrained_task_category,
            score=float(score), valid_score=valid_score, explanation=explanation,
            judge_metadata=judge_metadata, sub_tasks=sub_tasks or [],
        )


# ---------------------------------------------------------------- validation
def _label(node: dict | TaskNode, path: str) -> str:
    nid = node.get("id") if isinstance(node, dict) else node.id
    req = node.get("requirements") if isinstance(node, dict) else node.requirements
    snippet = f" ({str(req)[:60]!r})" if req else ""
    return f"node {nid!r} at {path}{snippet}"


def _check_raw_shape(data: Any, max_depth: int) -> None:
    """Depth and basic shape, before pydantic recurses into a possibly hostile structure."""
    if not isinstance(data, dict):
        raise RubricError(f"rubric root must be a JSON object, got {type(data).__name__}")
    stack: list[tuple[Any, str, int]] = [(data, "root", 0)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, dict):
            raise RubricError(f"{path}: a node must be a JSON object, got {type(node).__name__}")
        if depth > max_depth:
            raise RubricError(f"{_label(node, path)} is at depth {depth}, deeper than the maximum {max_depth}")
        subs = node.get("sub_tasks", [])
        if not isinstance(subs, list):
            raise RubricError(f"{_label(node, path)}: sub_tasks must be a list")
        for i, child in enumerate(subs):
            stack.append((child, f"{path}.sub_tasks[{i}]", depth + 1))


def _path_of(data: dict, loc: tuple) -> str:
    """Turn a pydantic error location into "node 'id' at root.sub_tasks[i]... field 'weight'"."""
    node, path, i = data, "root", 0
    while i + 1 < len(loc) and loc[i] == "sub_tasks" and isinstance(loc[i + 1], int):
        subs = node.get("sub_tasks") if isinstance(node, dict) else None
        idx = loc[i + 1]
        if not (isinstance(subs, list) and idx < len(subs) and isinstance(subs[idx], dict)):
            break
        node, path, i = subs[idx], f"{path}.sub_tasks[{idx}]", i + 2
    field = str(loc[i]) if i < len(loc) else "(node)"
    return f"{_label(node, path)} field {field!r}"


def duplicate_ids(root: TaskNode) -> list[str]:
    """Ids used by more than one node (two upstream rubrics, bbox and bridging-data-gaps, reuse
    leaf ids for copies under different parents)."""
    counts: dict[str, int] = {}
    for node in root.walk():
        counts[node.id] = counts.get(node.id, 0) + 1
    return sorted(i for i, n in counts.items() if n > 1)


def validate_tree(root: TaskNode, *, max_depth: int = MAX_DEPTH, allow_duplicate_ids: bool = True) -> None:
    """Raise RubricError naming the first bad node. Works on rubric and graded trees.

    Reused ids are accepted by default, as PaperBench's own rubrics have them: the judge keys
    verdicts by each node's position (its path), never by its id, so such a tree grades right;
    ``repro rubric check`` warns about them. ``allow_duplicate_ids=False`` is the strict check
    for rubrics this project writes.
    """
    seen: dict[str, str] = {}
    stack: list[tuple[TaskNode, str, int, tuple[str, ...]]] = [(root, "root", 0, ())]
    while stack:
        node, path, depth, ancestors = stack.pop()
        where = _label(node, path)
        if depth > max_depth:
            raise RubricError(f"{where} is at depth {depth}, deeper than the maximum {max_depth}")
        if not node.id:
            raise RubricError(f"{where} has an empty id")
        if node.id in ancestors:
            raise RubricError(f"{where} repeats the id of one of its ancestors (a cycle via ids)")
        if node.id in seen and not allow_duplicate_ids:
            raise RubricError(f"{where} has a duplicate id, first used at {seen[node.id]}")
        seen[node.id] = path
        w = node.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise RubricError(f"{where} has a non-numeric or non-finite weight {w!r}")
        if w < 0:
            raise RubricError(f"{where} has a negative weight {w}")
        if node.sub_tasks:
            if node.task_category is not None:
                raise RubricError(f"{where} has sub_tasks but also task_category {node.task_category!r}; "
                                  "only leaves carry a category")
            if node.finegrained_task_category is not None:
                raise RubricError(f"{where} has sub_tasks but also finegrained_task_category "
                                  f"{node.finegrained_task_category!r}; only leaves carry a category")
            if all(c.weight == 0 for c in node.sub_tasks):
                raise RubricError(f"{where}: all its sub_tasks have weight 0, so its score is undefined")
            for i, child in enumerate(node.sub_tasks):
                stack.append((child, f"{path}.sub_tasks[{i}]", depth + 1, ancestors + (node.id,)))
        else:
            if node.task_category is None:
                raise RubricError(f"{where} is a leaf without task_category (one of {', '.join(TASK_CATEGORIES)})")
            if node.task_category not in TASK_CATEGORIES:
                raise RubricError(f"{where} has unknown task_category {node.task_category!r}; "
                                  f"expected one of {', '.join(TASK_CATEGORIES)}")
            fg = node.finegrained_task_category
            if fg is not None and fg not in FINEGRAINED_CATEGORIES:
                raise RubricError(f"{where} has unknown finegrained_task_category {fg!r}; "
                                  f"expected one of {', '.join(FINEGRAINED_CATEGORIES)}")
            if isinstance(node, GradedTaskNode) and not 0.0 <= node.score <= 1.0:
                raise RubricError(f"{where} has score {node.score} outside [0, 1]")


# ---------------------------------------------------------------- load / save
def _read(source: str | Path | dict) -> tuple[Any, str]:
    if isinstance(source, dict):
        return source, "<dict>"
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text), str(path)
    except json.JSONDecodeError as exc:
        raise RubricError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RubricError(f"{path} is nested too deeply to parse") from exc


def _parse(cls: type[TaskNode], source: str | Path | dict, max_depth: int, allow_duplicate_ids: bool) -> Any:
    data, name = _read(source)
    try:
        _check_raw_shape(data, max_depth)
        try:
            node = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise RubricError(f"{_path_of(data, tuple(err['loc']))}: {err['msg']}") from None
        validate_tree(node, max_depth=max_depth, allow_duplicate_ids=allow_duplicate_ids)
    except RubricError as exc:
        raise RubricError(f"{name}: {exc}") from None
    return node


def load_rubric(source: str | Path | dict, *, max_depth: int = MAX_DEPTH,
                allow_duplicate_ids: bool = True) -> TaskNode:
    """Load and validate a PaperBench rubric (path to rubric.json, or the parsed dict)."""
    return _parse(TaskNode, source, max_depth, allow_duplicate_ids)


def load_graded(source: str | Path | dict, *, max_depth: int = MAX_DEPTH,
                allow_duplicate_ids: bool = True) -> GradedTaskNode:
    """Load and validate a graded tree (PaperBench ``expected_result.json`` / our judge's output)."""
    return _parse(GradedTaskNode, source, max_depth, allow_duplicate_ids)


def dumps(node: TaskNode) -> str:
    # indent=4 and ASCII escapes: the upstream files' exact formatting.
    return json.dumps(node.to_dict(), indent=4)


def save_rubric(node: TaskNode, path: str | Path) -> None:
    """Write atomically (temp file + rename): a crash never leaves half a rubric."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(node), encoding="utf-8")
    tmp.replace(path)


save_graded = save_rubric
