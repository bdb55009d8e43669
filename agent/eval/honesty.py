"""Honesty checks applied in aggregate, on top of what each run's judge decided.

- Start-marker rule (PaperBench): a run whose reproduction produced no result file at or after
  its start marker has Result Analysis 0 in the leaderboard, whatever its judge said; runs whose
  reproduction found result files older than the marker (left by the agent, or forged) are
  counted too.
- Blacklist: only meaningful when a run's sandbox had network access. Our sandboxes have none
  (``SandboxPolicy.network_mode`` is "none"), so the check is recorded as not applicable rather
  than pretending anything was monitored. For an online run the check reads the run's network
  monitor log (``logs/network.jsonl``: one {"url"|"command": ...} per line); an online run
  without that log is marked unverified, and a blacklisted hit scores 0 with the reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders.aggregate import aggregate
from graders.rubric import GradedTaskNode

RESULT_ANALYSIS = "Result Analysis"
OFFLINE = "offline: blacklist not applicable"
MONITOR_LOG = "logs/network.jsonl"


@dataclass(frozen=True)
class MarkerCheck:
    produced: int  # result files written by the reproduction at/after its start marker
    stale: int  # result files older than the marker (ignored by the reproduction)
    reason: str | None  # why Result Analysis is forced to 0 (None: it is not)


def marker_check(report: dict) -> MarkerCheck:
    rep = report.get("reproduction") or {}
    produced = len(rep.get("results") or {})
    stale = sum(1 for s in rep.get("ignored") or [] if "before the reproduction started" in s)
    if not rep or rep.get("start_time") is None:
        return MarkerCheck(0, stale, "no reproduction ran: no result can come from one")
    if produced == 0:
        why = f"{stale} result file(s) predate the start marker" if stale else "no result file was written"
        return MarkerCheck(0, stale, f"the reproduction produced no result after its start marker ({why})")
    return MarkerCheck(produced, stale, None)


def zero_category(tree: dict, category: str) -> dict:
    """A copy of a graded tree with every leaf of ``category`` scored 0 (still valid)."""

    def visit(n: dict) -> dict:
        subs = n.get("sub_tasks") or []
        if not subs and n.get("task_category") == category:
            return {**n, "score": 0.0, "valid_score": True,
                    "explanation": "set to 0 by the leaderboard: results not produced by the reproduction"}
        return {**n, "sub_tasks": [visit(c) for c in subs]}

    return visit(tree)


def rescore(tree: dict) -> dict[str, Any]:
    agg = aggregate(GradedTaskNode.model_validate(tree))
    return {"score": agg.score, "coverage": agg.coverage, "by_category": dict(agg.by_category)}


def blacklist_check(run_dir: Path, report: dict, blacklist: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """{"status": str, "flagged": bool, "hits": [...]} for one run."""
    network = _network(run_dir, report)
    if network in (None, "none"):
        return {"status": OFFLINE, "flagged": False, "hits": []}
    if not blacklist:
        return {"status": "online: no blacklist for this paper", "flagged": False, "hits": []}
    log = Path(run_dir) / MONITOR_LOG
    if not log.is_file():
        return {"status": "online: not monitored (no network log) — unverified", "flagged": False, "hits": []}
    hits = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        seen = " ".join(str(event.get(k, "")) for k in ("url", "command", "host"))
        hits += [f"{entry} in {seen[:200]!r}" for entry in blacklist if entry and entry in seen]
    if hits:
        return {"status": f"blacklisted resource used: {hits[0]}", "flagged": True, "hits": hits[:20]}
    return {"status": "online: monitored, no blacklisted resource", "flagged": False, "hits": []}


def _network(run_dir: Path, report: dict) -> str | None:
    """The run's sandbox network mode, from its report, else its saved run config."""
    env = report.get("environment") or {}
    if env.get("network"):
        return str(env["network"])
    run_json = Path(run_dir) / "run.json"
    if run_json.is_file():
        policy = (json.loads(run_json.read_text()).get("policy") or {})
        if policy.get("network_mode"):
            return str(policy["network_mode"])
    return None
