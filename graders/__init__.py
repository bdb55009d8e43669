"""Rubrics, aggregation and the LLM judge. Never imports ``agent`` (see docs/architecture.md)."""
from graders.aggregate import Aggregate, aggregate, regrade
from graders.rubric import GradedTaskNode, RubricError, TaskNode, load_graded, load_rubric, save_rubric

__all__ = [
    "Aggregate", "aggregate", "regrade",
    "GradedTaskNode", "RubricError", "TaskNode", "load_graded", "load_rubric", "save_rubric",
]
