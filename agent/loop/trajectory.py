"""The loop's conversation on disk: trajectory/<turn>.json, one file per model turn.

A turn file holds the user notes shown before the model's reply (reminders, nudges, feedback),
the reply (thought + tool calls, usage) and, as they finish, each call's result. Files are
rewritten atomically and keyed by turn and call id, so a node re-run after a crash overwrites
rather than duplicates; only turns up to the checkpointed ``loop.turn`` count.
"""
from __future__ import annotations

import json
from pathlib import Path

from graders.files import write_json


def turn_path(run_dir: Path, turn: int) -> Path:
    return Path(run_dir) / "trajectory" / f"{turn:04d}.json"


def load_turn(run_dir: Path, turn: int) -> dict | None:
    p = turn_path(run_dir, turn)
    return json.loads(p.read_text()) if p.exists() else None


def save_turn(run_dir: Path, record: dict) -> None:
    write_json(turn_path(run_dir, record["turn"]), record)


def add_result(run_dir: Path, turn: int, result: dict) -> None:
    record = load_turn(run_dir, turn) or {"turn": turn, "results": []}
    results = [r for r in record.get("results", []) if r["id"] != result["id"]] + [result]
    record["results"] = results
    save_turn(run_dir, record)


def turns(run_dir: Path, upto: int) -> list[dict]:
    """Turns 1..upto that exist (a crash may have left none for the last)."""
    out = []
    for n in range(1, upto + 1):
        t = load_turn(run_dir, n)
        if t is not None:
            out.append(t)
    return out


def all_turns(run_dir: Path) -> list[dict]:
    d = Path(run_dir) / "trajectory"
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []
