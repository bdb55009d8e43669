"""A person's corrections to the judge: leaf grades overridden with a reason, who and when.

Stored in ``runs/<id>/overrides.json`` (a list, oldest first; the latest entry for a leaf
wins). The judge's own tree in ``graded.json`` is never modified, so an override can be
withdrawn and the judge's verdict is always there to compare with. Applying overrides gives
a new tree whose internal scores are re-aggregated (``graders.aggregate.regrade``).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from graders.rubric import GradedTaskNode
from graders.files import write_json

FILE = "overrides.json"
MAX_REASON_CHARS = 2000


class OverrideError(ValueError):
    """An override that cannot be recorded (unknown leaf, bad score, no reason)."""


def load_overrides(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OverrideError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    return data if isinstance(data, list) else []


def latest_by_leaf(overrides: list[dict]) -> dict[str, dict]:
    """Leaf id -> the override in force (a later entry replaces an earlier one; score None withdraws)."""
    out: dict[str, dict] = {}
    for o in overrides:
        if o.get("score") is None:
            out.pop(o.get("leaf_id"), None)
        else:
            out[o["leaf_id"]] = o
    return out


def add_override(run_dir: Path, judge_tree: GradedTaskNode, leaf_id: str, score: float | None,
                 reason: str, who: str) -> dict:
    """Record an override of ``leaf_id`` (score 0 or 1; None withdraws the last one)."""
    leaf = judge_tree.find(leaf_id)
    if leaf is None:
        raise OverrideError(f"no rubric node with id {leaf_id!r}")
    if leaf.sub_tasks:
        raise OverrideError(f"{leaf_id!r} is not a leaf: only leaves are graded; its score is aggregated")
    if score is not None and score not in (0, 1):
        raise OverrideError(f"score must be 0 or 1, got {score!r}")
    reason = (reason or "").strip()
    if not reason:
        raise OverrideError("give a reason: the report shows it beside the new grade")
    if len(reason) > MAX_REASON_CHARS:
        raise OverrideError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    who = (who or "").strip()
    if not who:
        raise OverrideError("say who overrides the grade")
    entry = {"leaf_id": leaf_id, "score": None if score is None else float(score), "reason": reason, "who": who,
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "judge": {"score": leaf.score, "valid_score": bool(leaf.valid_score), "explanation": leaf.explanation}}
    entries = load_overrides(run_dir) + [entry]
    write_json(Path(run_dir) / FILE, entries)
    return entry


def apply_overrides(node: GradedTaskNode, in_force: dict[str, dict]) -> GradedTaskNode:
    """A copy of ``node`` with overridden leaves (valid, with the person's score); parents untouched.

    Call ``graders.aggregate.regrade`` on the result to recompute the parents.
    """
    if not node.sub_tasks:
        o = in_force.get(node.id)
        if o is None:
            return node
        meta = dict(node.judge_metadata) if isinstance(node.judge_metadata, dict) else {"judge": node.judge_metadata}
        meta["override"] = {k: o[k] for k in ("score", "reason", "who", "at")}
        return GradedTaskNode.from_task(node, score=o["score"], valid_score=True,
                                        explanation=f"Overridden by {o['who']}: {o['reason']}",
                                        judge_metadata=meta)
    subs = [apply_overrides(c, in_force) for c in node.sub_tasks]
    return GradedTaskNode.from_task(node, score=node.score, valid_score=node.valid_score,
                                    explanation=node.explanation, judge_metadata=node.judge_metadata, sub_tasks=subs)
