"""report: assemble everything the run produced into report.json / .md / .html."""
from __future__ import annotations

import json
import os
import platform
import re
import time
from importlib import metadata
from pathlib import Path

from langgraph.runtime import Runtime

from agent.context import RunContext
from agent.nodes.common import finished
from agent.plan import METHOD_LABELS
from agent.state import RunState
from graders.report import write_report


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _on_paper_scale(value: float, reported: dict | None) -> float:
    # Papers print accuracy as 81.2 (%) or 0.812; show ours on the paper's scale.
    return value * 100 if reported and reported["value"] > 1.5 else value


def build_report_data(state: dict, cfg, models: dict) -> dict:
    run_dir = Path(cfg.run_dir)
    plan = state.get("plan") or {}
    rep = state.get("reproduction") or {}
    full = {}
    if (run_dir / "reproduction.json").exists():
        full = json.loads((run_dir / "reproduction.json").read_text()).get("results", {})
    results = rep.get("results") or {}
    comparison, before_after = [], []
    for exp in plan.get("experiments", []):
        m = exp["method"]
        r = results.get(m)
        reported = exp.get("reported_after")
        reproduced = None
        delta = None
        if r:
            display = _on_paper_scale(r["after"], reported)
            reproduced = {"value": r["after"], "display": display,
                          "file": f"reproduction/{r['file']}", "key": f"after.{r['metric']}"}
            delta = display - reported["value"] if reported else None
            before_after.append({"method": METHOD_LABELS.get(m, m), "before": r["before"], "after": r["after"],
                                 "trainable_params": r.get("trainable_params"), "total_params": r.get("total_params"),
                                 "train_seconds": r.get("train_seconds")})
        comparison.append({"experiment": exp["name"], "method": m, "metric": plan.get("metric", "accuracy"),
                           "reported": reported, "reproduced": reproduced, "delta": delta})
    before_rep = next((e.get("reported_before") for e in plan.get("experiments", []) if e.get("reported_before")), None)
    if before_rep and results:
        first = next(iter(results.values()))
        display = _on_paper_scale(first["before"], before_rep)
        comparison.insert(0, {"experiment": "Before fine-tuning", "method": "before", "metric": plan.get("metric", "accuracy"),
                              "reported": before_rep,
                              "reproduced": {"value": first["before"], "display": display,
                                             "file": f"reproduction/{first['file']}", "key": f"before.{first['metric']}"},
                              "delta": display - before_rep["value"]})
    grade = state.get("grade")
    graded_tree = json.loads((run_dir / "graded.json").read_text()) if grade and (run_dir / "graded.json").exists() else None
    usage = state.get("usage") or {}
    ju = (grade or {}).get("judge_usage", {})
    status = state.get("status") or "done"
    if grade:
        verdict = (f"Replication score {grade['score']:.2f} (coverage {grade['coverage']:.0%}) — "
                   f"agent {models['agent']}, judge {models['judge']}")
    else:
        verdict = f"Not graded — run {status}" + (f": {state.get('stop_reason')}" if state.get("stop_reason") else "")
    warnings = list((state.get("paper") or {}).get("warnings", []))
    if plan.get("source") == "fallback":
        warnings.append("The plan was built from the paper alone: the agent model's answers were unusable.")
    if grade and grade.get("self_grading"):
        warnings.append("The judge is the agent's own model: it graded its own work.")
    if rep and not rep.get("ok"):
        warnings.append(f"The reproduction run {rep.get('summary')}.")
    return {
        "run_id": cfg.run_id,
        "status": status,
        "stop_reason": state.get("stop_reason"),
        "verdict": verdict,
        "warnings": warnings,
        "paper": {**(state.get("paper") or {}), "source": str(cfg.paper_path),
                  "link": Path(cfg.paper_path).resolve().as_uri()},
        "models": models,
        "plan_source": plan.get("source"),
        "plan_notes": plan.get("notes", []),
        "deviations": plan.get("deviations", []),
        "comparison": comparison,
        "before_after": before_after,
        "reproduction": {**rep, "results_full": full},
        "debug_log": state.get("debug_log", []),
        "grade": grade,
        "graded_tree": graded_tree,
        "cost": cost_summary(usage, ju, models, cfg, rep, state.get("started_at")),
        "environment": environment(cfg),
    }


# Dollars per million (prompt, completion) tokens. Local models cost nothing; an unknown
# endpoint model gets "unknown" rather than a guess. REPRO_PRICE_PER_MTOK="in,out" overrides.
PRICES_PER_MTOK = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-nano": (0.10, 0.40), "o4-mini": (1.10, 4.40),
}


def _price(name: str, local: bool) -> tuple[float, float] | None:
    env = os.environ.get("REPRO_PRICE_PER_MTOK")
    if env:
        a, _, b = env.partition(",")
        return float(a), float(b or a)
    if local:
        return 0.0, 0.0
    return PRICES_PER_MTOK.get(name)


def cost_summary(usage: dict, judge_usage: dict, models: dict, cfg, rep: dict, started_at: float | None) -> dict:
    dollars, notes = 0.0, []
    for role, u, mc in (("agent", usage, cfg.agent_model), ("judge", judge_usage, cfg.judge_model)):
        price = _price(models.get(role, ""), mc.embedded)
        if price is None:
            dollars = None
            break
        dollars += (u.get("prompt_tokens", 0) * price[0] + u.get("completion_tokens", 0) * price[1]) / 1e6
        if mc.embedded:
            notes.append(f"{role}: local model, no charge")
    smoke = _smoke_seconds(Path(cfg.run_dir) / "logs")
    return {
        "agent_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        "agent_calls": usage.get("calls", 0),
        "reasks": usage.get("reasks", 0),
        "judge_tokens": judge_usage.get("prompt_tokens", 0) + judge_usage.get("completion_tokens", 0),
        "judge_calls": judge_usage.get("calls", 0),
        "dollars": None if dollars is None else round(dollars, 6),
        "price_note": "; ".join(notes),
        "wall_s": round(time.time() - (started_at or time.time()), 1),
        "smoke_s": smoke,
        "reproduce_s": rep.get("duration_s"),
        "sandbox_s": round(smoke + (rep.get("duration_s") or 0.0), 1),
    }


def _smoke_seconds(logs: Path) -> float:
    # execute-N.log ends each command with "[succeeded after 7.6s]" (ExecResult.summary()).
    total = 0.0
    for log in logs.glob("execute-*.log"):
        total += sum(float(x) for x in re.findall(r"after ([0-9.]+)s\]", log.read_text(errors="replace")))
    return round(total, 1)


def environment(cfg) -> dict:
    return {
        "sandbox": cfg.sandbox_backend,
        "image": cfg.image or "repro-sandbox:latest",
        # the runner opens sandboxes without a GPU (open_sandbox's gpu=False default)
        "gpu": "no (CPU only)",
        "host": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        **{dist: _version(dist) for dist in ("torch", "transformers", "peft", "accelerate", "numpy", "repro")},
    }


def report(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    ctx.progress("node", name="report", detail=str(cfg.run_dir))
    status = state.get("status") or "running"
    final = "done" if status == "running" else status
    data = build_report_data({**state, "status": final}, cfg,
                             {"agent": ctx.model.name, "judge": ctx.judge_model.name})
    paths = write_report(data, cfg.run_dir)
    return {"report": paths, "status": final, "node_log": finished(state, "report")}
