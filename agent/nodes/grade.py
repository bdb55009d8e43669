"""grade: the LLM judge over the rubric (given, bundled beside the paper, or generated)."""
from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from agent.context import RunContext
from graders.files import write_atomic
from agent.state import RunState
from graders.aggregate import aggregate, split_by_decider
from graders.checks import bind_to_plan, load_sidecar, numeric_leaves
from graders.checks import propose as propose_checks
from graders.contract import read_results
from graders.judge_eval import quality as judge_quality
from graders.generate import build_rubric
from graders.judge import JudgeConfig, grade_submission
from graders.rubric import dumps, load_rubric, save_rubric
from papers.paper import Paper


def _rubric(cfg, paper: Paper, judge, plan: dict | None = None) -> tuple[object, str, list[str], dict]:
    """(rubric, where it came from, warnings, checks by leaf id — from the sidecar beside a given
    or bundled rubric, or written by the generator for its own leaves)."""
    for path in (cfg.rubric_path, Path(cfg.paper_path).with_name("rubric.json")):
        if path and Path(path).is_file():
            checks, notes = bind_to_plan(load_sidecar(Path(path)), plan)
            return load_rubric(path), str(path), notes, checks
    # graded against the plan: its targets get checks, its deviations shape the setup and result leaves
    generated = build_rubric(paper, judge, plan=plan)
    return generated.rubric, "generated from the paper", list(generated.warnings), dict(generated.checks)


def checks_not_run(graded, checks: dict) -> list[dict]:
    """Each leaf that has a check but was not decided by it, with why: the rule that decided it
    first (no reproduction, no results file, ...) is the leaf's own explanation."""
    out = []
    for leaf in graded.walk():
        if leaf.sub_tasks or leaf.id not in (checks or {}) or (leaf.judge_metadata or {}).get("decided_by") == "check":
            continue
        why = leaf.explanation or "the leaf was decided before its check could run, and no reason was recorded"
        out.append({"leaf_id": leaf.id, "requirements": leaf.requirements, "why": why,
                    "experiments": sorted({c.experiment for c in checks[leaf.id]})})
    return out


def grade(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    run_dir = cfg.run_dir
    paper = Paper.model_validate_json((run_dir / "paper.json").read_text())
    rubric, source, warnings, checks = _rubric(cfg, paper, ctx.judge_model, state.get("plan"))
    proposals: list[dict] = []
    rep = state.get("reproduction") or {}
    if not checks and rep.get("start_time") and source != "generated from the paper":
        # a rubric with no sidecar: the judge may map numeric leaves to numbers, validated before use
        results = read_results(run_dir / "reproduction", rep["start_time"], state.get("plan"))[0]
        checks, proposals = propose_checks(ctx.judge_model, numeric_leaves(rubric, cfg.propose_checks), results,
                                           paper.results)
    # The rubric lives only on the host side of the run dir: no sandbox ever mounts it (J05).
    save_rubric(rubric, run_dir / "rubric.json")
    ctx.progress("node", name="grade", detail=f"{ctx.judge_model.name}, rubric {source}")
    graded = grade_submission(
        rubric,
        submission_dir=run_dir / "submission",
        reproduction_dir=(run_dir / "reproduction") if rep.get("dir") else None,
        start_time=rep.get("start_time"),
        paper_text=paper.text(max_chars=60_000),
        model=ctx.judge_model,
        cache_dir=run_dir / "judge-cache",
        agent_model=ctx.model.name,
        progress=lambda done, total: ctx.progress("grade", done=done, total=total),
        config=JudgeConfig.for_context(getattr(ctx.judge_model, "context_tokens", None)),
        checks=checks,
        plan=state.get("plan"),
    )
    write_atomic(run_dir / "graded.json", dumps(graded))
    agg = aggregate(graded)
    meta = graded.judge_metadata or {}
    return {
        "grade": {
            "score": agg.score,
            "coverage": agg.coverage,
            "leaves": agg.leaves,
            "invalid_leaves": agg.invalid_leaves,
            "by_category": agg.by_category,
            "rubric_source": source,
            "rubric_warnings": warnings,
            "judge_model": ctx.judge_model.name,
            "self_grading": bool(meta.get("self_grading")),
            "judge_warnings": list(meta.get("warnings", [])),
            "judge_usage": {k: meta.get(k, 0) for k in ("calls", "cache_hits", "prompt_tokens", "completion_tokens")},
            "parts": split_by_decider(graded),
            "judge_quality": judge_quality(ctx.judge_model.name),
            "check_proposals": proposals,
            "checks": [dict((leaf.judge_metadata or {})["check"], requirements=leaf.requirements)
                       for leaf in graded.walk() if (leaf.judge_metadata or {}).get("decided_by") == "check"],
            "checks_not_run": checks_not_run(graded, checks),
        },
        "node_log": ["grade"],
    }
