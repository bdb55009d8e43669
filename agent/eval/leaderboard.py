"""The leaderboard: per paper × configuration mean ± SEM over seeds, and a summary per configuration.

Numbers come from each run's own report.json (score, coverage, by-category, cost), then the
honesty rules of ``agent.eval.honesty`` apply. A run that failed or stopped before grading
counts as 0 (score and coverage) — it is a failed replication, not a missing data point — and
its cause is listed. The summary row follows PaperBench: for each seed the mean over papers,
then mean ± standard error over seeds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agent.eval.honesty import RESULT_ANALYSIS, blacklist_check, marker_check, rescore, zero_category
from agent.eval.tasks import RESULT_NAME, TaskState

CATEGORIES = ("Code Development", "Code Execution", "Result Analysis")


def mean_sem(values: list[float]) -> dict[str, Any]:
    """Mean and standard error of the mean (sample SD / sqrt(n)); SEM is None below 2 values."""
    n = len(values)
    if n == 0:
        return {"mean": None, "sem": None, "n": 0}
    m = sum(values) / n
    sem = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n) if n > 1 else None
    return {"mean": m, "sem": sem, "n": n}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_row(state: TaskState, runs_dir: Path, out_dir: Path) -> dict[str, Any]:
    """One (paper, config, seed): its latest finished attempt, read back from disk."""
    base = {"paper": state.paper.paper_id, "config": state.config.name, "config_id": state.config.config_id,
            "seed": state.seed, "task_status": state.status}
    result = state.result
    if result is None:
        return {**base, "status": "missing", "run_id": None, "cause": "not run yet" if not state.attempts
                else "unfinished (interrupted, or paused for review): the next `repro eval` resumes it"}
    run_dir = Path(runs_dir) / result["run_id"]
    rel = run_dir.relative_to(out_dir).as_posix() if run_dir.is_relative_to(out_dir) else run_dir.as_posix()
    report: dict = {}
    if (run_dir / "report.json").is_file():
        report = json.loads((run_dir / "report.json").read_text())
    grade = report.get("grade") or None
    cost = report.get("cost") or {}
    row: dict[str, Any] = {
        **base,
        "run_id": result["run_id"],
        "attempt": result.get("attempt"),
        "status": result.get("status"),
        "cause": result.get("cause"),
        "links": {fmt: f"{rel}/report.{fmt}" for fmt in ("html", "md", "json")
                  if (run_dir / f"report.{fmt}").is_file()},
        "graded": grade is not None,
        "judge": ({"model": grade.get("judge_model"), "f1": (grade.get("judge_quality") or {}).get("f1"),
                   "n": (grade.get("judge_quality") or {}).get("n")} if grade else None),
        "reported": ({"score": grade["score"], "coverage": grade["coverage"],
                      "by_category": dict(grade.get("by_category") or {})} if grade else None),
        "cost": {
            "agent_tokens": _num(cost.get("agent_tokens")) or 0.0,
            "judge_tokens": _num(cost.get("judge_tokens")) or 0.0,
            "dollars": _num(cost.get("dollars")),
            "wall_s": _num(cost.get("wall_s")) if cost.get("wall_s") is not None else _num(result.get("task_wall_s")),
            "sandbox_s": _num(cost.get("sandbox_s")) if cost.get("sandbox_s") is not None
            else _num(cost.get("reproduce_s")) or 0.0,
        },
    }
    marker = marker_check(report)
    black = blacklist_check(run_dir, report, state.paper.blacklist)
    row["honesty"] = {"result_analysis_zeroed": None, "stale_result_files": marker.stale,
                      "results_produced": marker.produced, "blacklist": black["status"],
                      "blacklisted": black["flagged"], "blacklist_hits": black["hits"]}
    notes: list[str] = []
    if grade is None:
        score, coverage, by_cat = 0.0, 0.0, {c: 0.0 for c in CATEGORIES}
        notes.append(f"not graded ({row['status']}): counted as 0")
    else:
        score, coverage, by_cat = grade["score"], grade["coverage"], dict(grade.get("by_category") or {})
        tree = report.get("graded_tree")
        if marker.reason and RESULT_ANALYSIS in by_cat:
            row["honesty"]["result_analysis_zeroed"] = marker.reason
            if by_cat[RESULT_ANALYSIS] > 0 and tree:
                fixed = rescore(zero_category(tree, RESULT_ANALYSIS))
                score, coverage, by_cat = fixed["score"], fixed["coverage"], fixed["by_category"]
            elif by_cat[RESULT_ANALYSIS] > 0:  # no tree to recompute from: the conservative bound
                score, by_cat = 0.0, {**by_cat, RESULT_ANALYSIS: 0.0}
            notes.append(f"Result Analysis set to 0: {marker.reason}")
    if black["flagged"]:
        score, by_cat = 0.0, {c: 0.0 for c in by_cat}
        notes.append(f"scored 0: {black['status']}")
    row.update(score=score, coverage=coverage, by_category=by_cat, notes=notes)
    return row


def _judge_of(rows: list[dict]) -> str:
    """Which judge graded a configuration's runs, with its measured accuracy (or 'unmeasured')."""
    seen = {(j["model"], j["f1"], j["n"]) for r in rows if (j := r.get("judge"))}
    if not seen:
        return "—"
    return "; ".join(f"{m} ({f'F1 {f1:.2f} on {n} leaves' if f1 is not None else 'unmeasured'})"
                     for m, f1, n in sorted(seen, key=str))


def _cell(rows: list[dict]) -> dict[str, Any]:
    finished = [r for r in rows if r["status"] != "missing"]
    cats = sorted({c for r in finished for c in r.get("by_category", {})} | set(CATEGORIES),
                  key=lambda c: (CATEGORIES.index(c) if c in CATEGORIES else 99, c))
    dollars = [r["cost"]["dollars"] for r in finished]
    return {
        "n": len(finished),
        "missing": len(rows) - len(finished),
        "score": mean_sem([r["score"] for r in finished]),
        "coverage": mean_sem([r["coverage"] for r in finished]),
        "by_category": {c: mean_sem([r["by_category"].get(c, 0.0) for r in finished]) for c in cats},
        "cost": {
            "agent_tokens": mean_sem([r["cost"]["agent_tokens"] for r in finished]),
            "judge_tokens": mean_sem([r["cost"]["judge_tokens"] for r in finished]),
            "dollars_total": (sum(dollars) if dollars and all(d is not None for d in dollars) else None),
            "dollars_unknown": sum(1 for d in dollars if d is None),
            "wall_s": mean_sem([r["cost"]["wall_s"] for r in finished if r["cost"]["wall_s"] is not None]),
            "sandbox_s": mean_sem([r["cost"]["sandbox_s"] for r in finished]),
        },
        "failures": [{"seed": r["seed"], "status": r["status"], "cause": r.get("cause") or r["status"],
                      "run_id": r.get("run_id"), "link": (r.get("links") or {}).get("html")}
                     for r in rows if r["status"] not in ("done", "missing")],
        "result_analysis_zeroed": sum(1 for r in finished if r["honesty"]["result_analysis_zeroed"]),
        "stale_result_runs": sum(1 for r in finished if r["honesty"]["stale_result_files"]),
        "blacklisted": sum(1 for r in finished if r["honesty"]["blacklisted"]),
        "blacklist": sorted({r["honesty"]["blacklist"] for r in finished}),
        "runs": [{"seed": r["seed"], "run_id": r.get("run_id"), "status": r["status"],
                  "score": r.get("score"), "link": (r.get("links") or {}).get("html"),
                  "link_md": (r.get("links") or {}).get("md")} for r in sorted(rows, key=lambda r: r["seed"])],
    }


def build_leaderboard(rows: list[dict], *, configs: list[str], papers: list[str], seeds: int,
                      meta: dict | None = None) -> dict[str, Any]:
    cells = []
    for config in configs:
        for paper in papers:
            these = [r for r in rows if r["config"] == config and r["paper"] == paper]
            cells.append({"config": config, "paper": paper, **_cell(these)})
    summary = []
    for config in configs:
        these = [r for r in rows if r["config"] == config and r["status"] != "missing"]
        per_seed: dict[str, list[float]] = {}
        seed_means: dict[str, dict[int, float]] = {}
        for key, get in [("score", lambda r: r["score"]), ("coverage", lambda r: r["coverage"])] + \
                [(f"cat:{c}", (lambda c: lambda r: r["by_category"].get(c, 0.0))(c)) for c in CATEGORIES]:
            by_seed: dict[int, list[float]] = {}
            for r in these:
                by_seed.setdefault(r["seed"], []).append(get(r))
            seed_means[key] = {s: sum(v) / len(v) for s, v in sorted(by_seed.items())}
            per_seed[key] = list(seed_means[key].values())
        cell = _cell([r for r in rows if r["config"] == config])
        summary.append({
            "config": config,
            "papers": len({r["paper"] for r in these}),
            "n": len(these),
            "missing": cell["missing"],
            "score": mean_sem(per_seed["score"]),
            "coverage": mean_sem(per_seed["coverage"]),
            "by_category": {c: mean_sem(per_seed[f"cat:{c}"]) for c in CATEGORIES},
            "per_seed_score": {str(s): v for s, v in seed_means["score"].items()},
            "cost": cell["cost"],
            "failures": len(cell["failures"]),
            "result_analysis_zeroed": cell["result_analysis_zeroed"],
            "stale_result_runs": cell["stale_result_runs"],
            "blacklisted": cell["blacklisted"],
            "judge": _judge_of(these),
        })
    return {"meta": meta or {}, "configs": configs, "papers": papers, "seeds": seeds,
            "method": {"cell": "mean ± SEM over seeds (SEM = sample SD / sqrt(n))",
                       "summary": "per seed the mean over papers, then mean ± SEM over seeds (PaperBench)",
                       "failed_runs": "a run that failed or stopped before grading counts as 0",
                       "start_marker": "no result produced after the reproduction's start marker: "
                                       "Result Analysis 0, score recomputed from the graded tree"},
            "cells": cells, "summary": summary, "runs": rows}


def collect_rows(states: list[TaskState], runs_dir: Path, out_dir: Path) -> list[dict]:
    return [run_row(s, runs_dir, out_dir) for s in states]


__all__ = ["build_leaderboard", "collect_rows", "mean_sem", "run_row", "RESULT_NAME"]
