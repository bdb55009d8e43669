"""report: assemble everything the run produced into report.json / .md / .html.

The agent's side knows the plan and the loop: which experiments were replicated (and why not),
the trajectory, which files the model wrote and which came from scaffolds. graders.report
finishes and renders the data.
"""
from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

from langgraph.runtime import Runtime

from agent.budget import dollars
from agent.context import RunContext
from agent.loop import trajectory
from agent.loop.nodes import run_usage
from agent.state import RunState
from graders.contract import find_metric, mapped_metric, resolve_reproduces, target_ids
from graders.claims import setup_text, verdicts as claim_verdicts
from graders.stats import EXPERIMENT_STATUS, NOT_COMPARABLE, claim_verdict, paired_verdict
from graders.report import write_report
from sandbox.broker import assets_used

def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _on_paper_scale(value: float, reported: dict | None) -> float:
    # Papers print accuracy as 81.2 (%) or 0.812; show ours on the paper's scale.
    return value * 100 if reported and reported["value"] > 1.5 and abs(value) <= 1.0 else value


def substituted(plan: dict) -> bool:
    """Whether the run's setup differs from the paper's (any recorded deviation: model, dataset,
    scale, epochs): the paper's absolute numbers are then not comparable with ours."""
    return bool(plan.get("deviations"))


def _lookup(r: dict, target: dict | None, tid: str | None, where: str, metric: str) -> tuple[str, float, str] | None:
    """(key, value, how): the results file's own ``reproduces`` map first, then the word join."""
    got = mapped_metric(r, target=tid, where=where) if tid else None
    if got is not None:
        return got[0], got[1], "reproduces"
    got = find_metric(r.get(where) or {}, metric, (target or {}).get("column", ""))
    return (got[0], got[1], "name") if got is not None else None


def _missing(r: dict, target: dict | None, tid: str | None, where: str, metric: str) -> str:
    """Why a results file gives no number for a target."""
    keys = ", ".join(sorted(r.get(where) or {})) or "none"
    cell = f" ({target['table']}, column '{target['column']}')" if target else ""
    why = (f"{r.get('file') or 'its results file'} has no number for the paper's {metric}{cell}: no key of its "
           f"{where!r} ({keys}) matches it" + (f", and its 'reproduces' map names none for {tid}" if tid else ""))
    return why + (f"; {r['mapping_error']}" if r.get("mapping_error") else "")


def _row(exp: dict, target: dict | None, r: dict | None, where: str, label: str, tid: str | None = None,
         plan: dict | None = None) -> dict:
    metric = target["metric"] if target and target.get("metric") else exp.get("metric", "accuracy")
    got = _lookup(r, target, tid, where, metric) if r else None
    reproduced = delta = None
    row = {"experiment": label, "experiment_id": exp["id"], "target_id": tid,
           "metric": (target or {}).get("metric", exp.get("metric")), "reported": target}
    if got is not None:
        key, value, how = got
        display = _on_paper_scale(value, target)
        reproduced = {"value": value, "display": display, "file": f"reproduction/{r['file']}", "key": f"{where}.{key}",
                      "joined": how}
        ref = (r.get("reproduces") or {}).get(key) if how == "reproduces" else None
        if ref and ref.get("claim"):
            row["claim"] = {"id": ref["claim"], "text": ref.get("claim_text")}
        delta = display - target["value"] if target else None
    row.update({"reproduced": reproduced, "delta": delta, "comparable": True})
    approx = next((d for d in (plan or {}).get("deviations") or [] if d.get("what") == f"method of {exp['id']}"), None)
    if approx is not None:  # the number is of the recipe that stands in for the paper's method
        row["approximation"] = approx["reason"]
    if target and plan is not None and substituted(plan):
        # another setup than the paper's: its absolute number is not comparable with ours (no Δ shown)
        row["comparable"] = False
        row["not_comparable"] = (f"the setup differs from the paper's ({setup_text(plan)}), so the paper's absolute "
                                 "number, measured on its own setup, is not a target for ours")
    if r is not None and got is None:
        row["why"] = _missing(r, target, tid, where, metric)
    elif got is not None and not row["comparable"]:
        row["why"] = f"{NOT_COMPARABLE}: {row['not_comparable']}"
    elif target is None and r is not None:
        row["why"] = "the paper reports no number for this experiment"
    return row


def comparison(plan: dict, results: dict) -> tuple[list[dict], list[dict]]:
    """(reported vs reproduced rows, before/after rows), joined by experiment id and target: the
    results file's ``reproduces`` map first, then the metric's name and the column's words."""
    rows, before_after, before_done = [], [], False
    for exp in plan.get("experiments", []):
        r = results.get(exp["id"])
        ids = target_ids(exp)
        afters = [(tid, t) for tid, (t, where) in ids.items() if where == "metrics"] or [(None, None)]
        for tid, t in afters:
            rows.append(_row(exp, t, r, "metrics", exp["name"], tid, plan))
        befores = [(tid, t) for tid, (t, where) in ids.items() if where == "before"]
        if befores and not before_done:  # the paper's 'before' row, compared once (each of its columns)
            rows[:0] = [_row(exp, b, r, "before", "Before fine-tuning", tid, plan) for tid, b in befores]
            before_done = r is not None
        # every metric measured both before and after (RLHF: the reward and the KL to the start)
        for name in [m for m in (r or {}).get("metrics", {}) if m in ((r or {}).get("before") or {})]:
            before_after.append({"method": exp["name"], "metric": name, "before": r["before"][name],
                                 "after": r["metrics"][name], "trainable_params": r["info"].get("trainable_params"),
                                 "total_params": r["info"].get("total_params"),
                                 "train_seconds": r["info"].get("train_seconds"),
                                 "samples": r["info"].get("samples")})
    return rows, before_after


def paper_claims(plan: dict, results: dict, runs: list[dict]) -> list[dict]:
    """The paper's claims (C1, C2, ...: graders.claims), each tested on the reproduced numbers of
    every run (a seed each) — verdict and arithmetic — with the numbers the results files say
    support it (their ``reproduces`` maps)."""
    out = []
    setup = setup_text(plan) if substituted(plan) else None
    for v in claim_verdicts(plan, runs, substituted=setup):
        support = []
        for eid, r in results.items():
            for m, ref in (r.get("reproduces") or {}).items():
                where = "before" if (ref.get("target") or "").startswith("B") else "metrics"
                if ref.get("claim") == v["id"] and m in (r.get(where) or {}):
                    support.append({"experiment": eid, "metric": f"{where}.{m}", "value": r[where][m],
                                    "target": ref.get("target"), "file": f"reproduction/{r['file']}"})
        out.append({**v, "claim": v["text"], "support": support,
                    "mapped": "the results files map these numbers to it" if support else
                              "no results file maps a number to it (reproduces.<metric>.claim): found "
                              + (", ".join(f"{e}: {h}" for e, h in v["found"].items()) or "none")})
    return out


def _paper_scale(value: float, paper: float) -> float:
    return value * 100 if paper > 1.5 and abs(value) <= 1.0 else value


def claims_across_seeds(plan: dict, runs: dict, checks: list[dict]) -> list[dict]:
    """Each of the paper's numbers (and each comparative check), tested on every seed's run:
    mean with a 95% interval and a verdict — replicated, not replicated, or inconclusive."""
    tolerance_of = {(p["experiment"], (p.get("paper") or {}).get("value")): p.get("tolerance")
                    for c in checks for p in (c.get("parts") or [c]) if p.get("kind") == "close"}
    other_setup = substituted(plan)
    out = []
    for exp in plan.get("experiments", []):
        for tid, (t, where) in target_ids(exp).items():
            if where == "before" and not exp.get("before_targets"):
                continue  # the single 'reported_before' row is the comparison table's, not a claim
            values = []
            for run in runs.values():
                r = (run.get("results") or {}).get(exp["id"])
                got = _lookup(r, t, tid, where, t.get("metric", "accuracy")) if r else None
                if got is not None:
                    values.append(_paper_scale(got[1], t["value"]))
            if not values:
                out.append({"claim": f"{exp['name']}: {t['column']} = {t['text']}", "experiment": exp["id"],
                            "target_id": tid, "verdict": "not replicated",
                            "why": "no seed's reproduction wrote this number", "n": 0})
                continue
            tol = tolerance_of.get((exp["id"], t["value"])) or (3.0 if t["value"] > 1.5 else 0.03)
            label = "before training" if where == "before" else exp["name"]
            c = {"claim": f"{label}: {t['column']} = {t['text']} ({t['table']}, p. {t['page']})",
                 "experiment": exp["id"], "target_id": tid, **claim_verdict(values, t["value"], tol), "values": values}
            if other_setup:  # an absolute number of the paper's setup: shown, not tested
                c.update(verdict=NOT_COMPARABLE, why=f"the setup differs from the paper's ({setup_text(plan)}): its "
                                                     f"absolute number is not a target for ours (on its own: {c['why']})")
            out.append(c)
    for c in checks:
        for part in c.get("parts") or [c]:  # a leaf may hold several checks: each claim on its own
            spec = part.get("spec") or {}
            if spec.get("kind") != "greater":
                continue
            xs, ys = [], []
            for run in runs.values():
                res = run.get("results") or {}
                x = _quantity(res, spec["experiment"], spec["metric"])
                y = _quantity(res, spec["other"]["experiment"], spec["other"]["metric"])
                if x is not None and y is not None:
                    xs.append(x)
                    ys.append(y)
            if xs:
                out.append({"claim": f"{c.get('requirements', '')} ({spec['metric']} of {spec['experiment']} > "
                                     f"{spec['other']['metric']} of {spec['other']['experiment']})",
                            "experiment": spec["experiment"], "comparative": True,
                            **paired_verdict(xs, ys, spec.get("margin", 0.0))})
    return out


def _quantity(results: dict, experiment: str, metric: str) -> float | None:
    r = results.get(experiment)
    if r is None:
        return None
    where, name = ("before", metric[7:]) if metric.startswith("before.") else ("metrics", metric)
    got = mapped_metric(r, name=name, where=where) or find_metric(r.get(where) or {}, name)
    return got[1] if got else None


def _decides(part: dict, substituted: bool) -> bool:
    """Whether a check can decide its experiment's status: it found its numbers, and, where the
    setup differs from the paper's (any deviation), it compares reproduced numbers with each other
    or with a range — never an absolute number measured on another setup."""
    if part.get("reproduced") is None or (part.get("kind") in ("greater", "ratio_below") and part.get("other") is None):
        return False
    return not (substituted and part.get("kind") == "close")


def _no_comparable_reason(exp: dict, r: dict, parts: list[dict], plan: dict) -> str:
    """Why an experiment that ran has nothing that compares it with the paper: which checks could
    not find their numbers, which targets are not comparable or have no number, the map's error."""
    eid = exp["id"]
    reasons = []
    unfound = [p["arithmetic"] for p in parts if p.get("reproduced") is None]
    if substituted(plan) and any(p.get("kind") == "close" and p.get("reproduced") is not None for p in parts):
        reasons.append(f"its results ran on another setup than the paper's ({setup_text(plan)}): the paper's absolute "
                       "numbers are not comparable, and no comparative check covers it")
    elif not parts:
        reasons.append("no check or claim compares its numbers with the paper's")
    reasons += unfound[:2]
    targets = [(tid, t, where) for tid, (t, where) in target_ids(exp).items()]
    if not parts and targets:
        found = [(tid, t, got) for tid, t, where in targets
                 if (got := _lookup(r, t, tid, where, t.get("metric") or exp.get("metric", "accuracy")))]
        missing = [(tid, t, where) for tid, t, where in targets if tid not in {f[0] for f in found}]
        if found and substituted(plan):
            cells = ", ".join(f"{t['text']} ({t['column']})" for _, t, _ in found[:3])
            reasons.append(f"the paper's {cells} {'is' if len(found) == 1 else 'are'} not comparable: the setup "
                           f"differs from the paper's ({setup_text(plan)})")
        elif found:
            reasons.append("its numbers are shown beside the paper's (" + "; ".join(
                f"{got[0]} {got[1]:.4g} vs {t['text']}" for _, t, got in found[:3]) + "), but no rubric check "
                "compares them")
        if missing:
            tid, t, where = missing[0]
            reasons.append(_missing(r, t, tid, where, t.get("metric") or exp.get("metric", "accuracy")))
    elif not targets and not parts:
        reasons.append("the plan has no target of the paper's for it")
    if r.get("mapping_error") and not any(r["mapping_error"] in x for x in reasons):
        reasons.append(r["mapping_error"])
    return "; ".join(reasons)


def _stale_reason(note: str) -> str:
    if "before the reproduction started" in note:
        return f"its results file was not produced by the reproduction: {note}"
    return f"its results file breaks the contract (docs/submission.md), so it was ignored: {note}"


def experiment_status(plan: dict, results: dict, loop: dict, rep: dict, checks: list[dict] | None = None,
                      claims: list[dict] | None = None) -> list[dict]:
    """Each planned experiment's status (graders.stats.EXPERIMENT_STATUS) with its reason — never
    empty, never dropped silently: 'replicated' only when the checks and claims that compare it with
    the paper pass — a results file alone is 'ran, no comparable target'. The reason says what
    decided it: the failing check's arithmetic, the claim, the missing number or results file, the
    reproduction's or the loop's exit, a setup that makes the paper's absolute targets not comparable."""
    out = []
    scaffolded = set(loop.get("scaffolded_experiments") or [])
    other_setup = substituted(plan)
    for exp in plan.get("experiments", []):
        eid = exp["id"]
        if eid in results:
            # a "written" or "configured" check is a fact of the run (it wrote the number, it set the setting),
            # never a comparison with the paper
            parts = [p for c in checks or [] for p in (c.get("parts") or [c])
                     if p.get("experiment") == eid and p.get("kind") not in ("written", "configured", "claim")]
            deciding = [p for p in parts if _decides(p, other_setup)]
            # every claim it is part of, the subject of a comparison or the one compared with
            verdicts = [c for c in claims or [] if eid in (c.get("experiments") or [c.get("experiment")])
                        and (c.get("comparative") or not other_setup) and c.get("tested", True)]
            unsure = [p["arithmetic"] for p in deciding if p.get("inconclusive")]  # a ranking of collapsed models
            failed = [p["arithmetic"] for p in deciding if not p.get("passed") and not p.get("inconclusive")] + \
                [f"{c['claim'][:80]}: {c['why']}" for c in verdicts if c["verdict"] == "not replicated"]
            if not deciding and not verdicts:
                status, why = "ran, no comparable target", _no_comparable_reason(exp, results[eid], parts, plan)
            elif failed:
                status, why = "results differ", "; ".join(failed[:2])
            elif unsure or any(c["verdict"] == "inconclusive" for c in verdicts):
                status = "inconclusive"
                why = next((f"{c['claim'][:80]}: {c['why']}" for c in verdicts if c["verdict"] == "inconclusive"),
                           unsure[0] if unsure else "")
            else:
                status = "replicated"
                why = "; ".join([p["arithmetic"] for p in deciding] + [c["why"] for c in verdicts][:3])
            out.append({"id": eid, "name": exp["name"], "status": status,
                        "reason": why or EXPERIMENT_STATUS[status],
                        "results": f"results/{eid}/metrics.json (written by the reproduction)"})
            continue
        status = "failed"
        stale = [n for n in rep.get("ignored") or [] if n.startswith(f"results/{eid}/")]
        summary = rep.get("summary") or ("timed out" if rep.get("timed_out") else
                                         f"exited {rep['returncode']}" if rep.get("returncode") is not None else "")
        if stale:  # a results file existed, but the run did not write it (or it breaks the contract)
            why = _stale_reason(stale[0])
        elif not rep.get("start_time") and not loop:  # the run ended before the coding agent started
            status, why = "not attempted", rep.get("summary") or "the run ended before the reproduction"
        elif not rep.get("start_time"):
            why = rep.get("summary") or "the reproduction did not run (the run ended before it)"
        elif not rep.get("ok"):
            why = f"the reproduction {summary or 'failed'}, and wrote no results/{eid}/metrics.json"
        elif eid in scaffolded:
            why = f"scaffolded, but the reproduction wrote no results file for it (results/{eid}/metrics.json)"
        elif not exp.get("recipe"):
            status, why = "not attempted", (f"no tested recipe fits it and the agent wrote no code that reports it "
                                            f"(no results/{eid}/metrics.json)")
        else:
            status, why = "not attempted", f"the agent did not implement it (no results/{eid}/metrics.json)"
        exit_ = loop.get("exit")
        if exit_ and exit_ != "submitted":
            why += f" (the agent's loop ended: {loop.get('exit_detail') or exit_})"
        elif not loop:
            why += " (the coding agent never ran)"
        out.append({"id": eid, "name": exp["name"], "status": status, "reason": why or EXPERIMENT_STATUS[status]})
    return out


def file_origins(run_dir: Path, loop: dict, files: dict[str, str], review: dict) -> list[dict]:
    """Who wrote each submitted file: a scaffold (and whether the model edited it since), the
    model itself, or a reviewer."""
    scaffolded = loop.get("scaffolded") or {}
    edited_by_reviewer = set(review.get("edited_files") or [])
    out = []
    for rel, sha in sorted(files.items()):
        s = scaffolded.get(rel)
        if rel in edited_by_reviewer:
            origin = "edited by a reviewer"
        elif s and s.get("sha256") == sha:
            origin = f"scaffold ({', '.join(s['recipes'])}), unchanged"
        elif s:
            origin = f"scaffold ({', '.join(s['recipes'])}), then edited by the model"
        else:
            origin = "written by the model"
        out.append({"path": rel, "origin": origin, "sha256": sha})
    return out


def _head_tail(text: str, n: int) -> str:
    """A long output's start and end (an error is usually at the end), with the cut said."""
    if len(text) <= n:
        return text
    return text[: n // 2] + f"\n[... {len(text) - n} characters ...]\n" + text[-n // 2:]


def decided_text(loop: dict) -> str:
    """Who chose the loop's tool calls, in one sentence (the report, the UI and report.json)."""
    g, m = loop.get("guide_calls", 0), loop.get("model_calls", 0)
    if not g:
        return f"the model chose all {m} tool calls"
    return (f"the guide decided {g} of {g + m} tool calls: on {loop.get('guided', 0)} turns it offered one tool "
            "with its choosing arguments fixed, and the model only filled the free ones (a wait time, a note) "
            "and a short thought" + (f"; the model chose the other {m} from the full menu" if m else ""))


def agent_summary(run_dir: Path, state: dict) -> dict:
    loop = state.get("loop") or {}
    turns = trajectory.all_turns(run_dir)[: loop.get("turn", 0)] if loop.get("turn") else []
    steps = []
    for t in turns:
        results = {r["id"]: r for r in t.get("results", [])}
        calls = (t.get("reply") or {}).get("calls") or []
        if not calls:
            steps.append({"turn": t["turn"], "tool": None, "args": "", "result": (t.get("reask") or "no tool call"),
                          "ok": False, "seconds": 0.0, "changes": None, "menu": t.get("menu"), "guide": t.get("guide"),
                          "options": t.get("options"), "decided_by": t.get("decided_by")})
        for c in calls:
            r = results.get(c["id"]) or {}
            steps.append({"turn": t["turn"], "tool": c["name"], "args": json.dumps(c.get("arguments") or {})[:300],
                          "result": _head_tail(r.get("content") or "(not run)", 600), "ok": r.get("ok"),
                          "malformed": r.get("malformed", False), "seconds": r.get("seconds"),
                          "changes": r.get("changes"), "menu": t.get("menu"), "guide": t.get("guide"),
                          "options": t.get("options"), "decided_by": t.get("decided_by"),
                          "free_arguments": t.get("free_arguments")})
    u = loop.get("usage") or {}
    return {
        "turns": loop.get("turn", 0), "tool_calls": loop.get("tool_calls", 0), "malformed": loop.get("malformed", 0),
        "nudges": loop.get("nudges", 0), "reminders": loop.get("reminders", 0), "guided": loop.get("guided", 0),
        "guide_calls": loop.get("guide_calls", 0), "model_calls": loop.get("model_calls", 0),
        "decided": decided_text(loop),
        "exit": loop.get("exit"), "exit_detail": loop.get("exit_detail"),
        "submitted": loop.get("submitted"), "smoke": loop.get("smoke"),
        "tokens": u.get("prompt_tokens", 0) + u.get("completion_tokens", 0),
        "tokens_per_turn": round((u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)) / max(1, loop.get("turn", 0))),
        "jobs_stopped_at_exit": loop.get("jobs_stopped_at_exit") or [],
        "notes": loop.get("exit_notes") or [],
        "files": file_origins(run_dir, loop, state.get("files") or {}, state.get("review") or {}),
        "steps": steps,
    }


def build_report_data(state: dict, cfg, models: dict) -> dict:
    run_dir = Path(cfg.run_dir)
    plan = state.get("plan") or {}
    rep = state.get("reproduction") or {}
    full = {}
    if (run_dir / "reproduction.json").exists():
        full = json.loads((run_dir / "reproduction.json").read_text()).get("results", {})
    # each results file's own map of what reproduces what, checked against the plan's ids
    results = resolve_reproduces(plan, full or rep.get("results") or {})
    rows, before_after = comparison(plan, results)
    seed_runs = json.loads((run_dir / "reproduction.json").read_text()).get("seed_runs") \
        if (run_dir / "reproduction.json").exists() else None
    if seed_runs:
        seed_runs = {k: {**run, "results": resolve_reproduces(plan, run.get("results") or {})}
                     for k, run in seed_runs.items()}
    claims = claims_across_seeds(plan, seed_runs, (state.get("grade") or {}).get("checks") or []) if seed_runs else []
    if claims:  # the reported-vs-reproduced rows get their interval too
        by_key = {(c["experiment"], c.get("paper")): c for c in claims if not c.get("comparative")}
        for row in rows:
            c = by_key.get((row["experiment_id"], (row.get("reported") or {}).get("value")))
            if c and row.get("reproduced") and c.get("half") is not None:
                row["reproduced"]["interval"] = {"mean": c["mean"], "half": c["half"], "n": c["n"]}
    grade = state.get("grade")
    graded_tree = json.loads((run_dir / "graded.json").read_text()) if grade and (run_dir / "graded.json").exists() else None
    usage = run_usage(state)
    ju = (grade or {}).get("judge_usage", {})
    status = state.get("status") or "done"
    if grade:
        verdict = (f"Replication score {grade['score']:.2f} (coverage {grade['coverage']:.0%}) — "
                   f"agent {models['agent']}, judge {models['judge']}")
    else:
        verdict = f"Not graded — run {status}" + (f": {state.get('stop_reason')}" if state.get("stop_reason") else "")
    warnings = list((state.get("paper") or {}).get("warnings", []))
    if plan.get("source") == "fallback":
        warnings.append("The plan was built from the paper alone: it keeps no value the agent model gave (unusable, or all replaced by grounding).")
    if grade and grade.get("self_grading"):
        warnings.append("The judge is the agent's own model: it graded its own work.")
    if grade:
        q = grade.get("judge_quality")
        if q is None:
            warnings.append(f"The judge {grade['judge_model']} was never measured (repro judge-eval --model): how far "
                            "to trust its verdicts is unknown; the checked results above do not depend on it.")
        elif q.get("low_confidence"):
            warnings.append(f"Low-confidence judge: {grade['judge_model']} scored macro-F1 {q['f1']:.2f} on {q['n']} "
                            "labelled leaves; its verdicts are marked as such, and the checked results lead.")
    if rep and not rep.get("ok"):
        warnings.append(f"The reproduction run {rep.get('summary')}.")
    loop = state.get("loop") or {}
    if loop.get("guide_calls"):
        warnings.append(f"Guided run (the model is weak): {decided_text(loop)}; see 'The coding agent'.")
    warnings += [f"What reproduces what: {r['mapping_error']} — its map was ignored, and its metrics were joined "
                 "to the paper's targets by name." for r in results.values() if r.get("mapping_error")]
    f = plan.get("fields") or {}
    if f:
        warnings.append(f"Plan: of {f.get('kept', 0) + f.get('replaced', 0)} values the model gave, grounding kept "
                        f"{f.get('kept', 0)} and replaced {f.get('replaced', 0)}; it added {f.get('added', 0)} from the "
                        "paper (each field in plan/stage-*.json).")
    runs = [run.get("results") or {} for run in seed_runs.values()] if seed_runs else [results]
    tested = paper_claims(plan, results, runs)
    deciding = claims + [{**c, "claim": f"{c['id']} ({c['kind']}): {c['text']}"} for c in tested]
    experiments = experiment_status(plan, results, loop, rep, (grade or {}).get("checks"), deciding)
    by_id = {e["id"]: e for e in experiments}
    for row in rows:  # a row with nothing reproduced says why: its experiment's status
        if row.get("reproduced") is None and not row.get("why") and row["experiment_id"] in by_id:
            e = by_id[row["experiment_id"]]
            row["why"] = f"{e['status']}: {e['reason']}"
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
        "assets": assets_used(run_dir / "assets.json"),
        "experiments": experiments,
        "experiment_status": EXPERIMENT_STATUS,
        "claims": claims,
        "paper_claims": tested,
        "seeds": sorted(int(s) for s in seed_runs) if seed_runs else [cfg.seed],
        "comparison": rows,
        "before_after": before_after,
        "reproduction": {**rep, "results_full": full},
        "agent": agent_summary(run_dir, state) if loop else None,
        "grade": grade,
        "graded_tree": graded_tree,
        "cost": cost_summary(usage, ju, models, cfg, rep, state, state.get("started_at")),
        "environment": environment(cfg),
    }


def cost_summary(usage: dict, judge_usage: dict, models: dict, cfg, rep: dict, state: dict,
                 started_at: float | None) -> dict:
    """Tokens and dollars from the same price table the budget stop uses (Budgets.prices)."""
    notes, total = [], 0.0
    for role, u, mc in (("agent", usage, cfg.agent_model), ("judge", judge_usage, cfg.judge_model)):
        if mc.embedded:
            notes.append(f"{role}: local model, no charge")
            continue
        total += dollars(cfg.budgets, models.get(role, ""), u)
        if cfg.budgets.price(models.get(role, "")) == cfg.budgets.unknown_price:
            notes.append(f"{role}: no price known for {models.get(role)!r}; charged at the unknown-model rate")
    loop_s = (state.get("loop") or {}).get("sandbox_s", 0.0)
    return {
        "agent_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        "agent_calls": usage.get("calls", 0),
        "reasks": usage.get("reasks", 0) + (state.get("loop") or {}).get("malformed", 0),
        "judge_tokens": judge_usage.get("prompt_tokens", 0) + judge_usage.get("completion_tokens", 0),
        "judge_calls": judge_usage.get("calls", 0),
        "dollars": round(total, 6),
        "price_note": "; ".join(notes),
        "wall_s": round(time.time() - (started_at or time.time()), 1),
        "smoke_s": round(loop_s, 1),
        "reproduce_s": rep.get("duration_s"),
        "sandbox_s": round(loop_s + (rep.get("duration_s") or 0.0), 1),
    }


def environment(cfg) -> dict:
    return {
        "sandbox": cfg.sandbox_backend,
        "image": cfg.image or "repro-sandbox:latest",
        "gpu": _gpu(cfg),
        "host": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        **{dist: _version(dist) for dist in ("torch", "transformers", "peft", "accelerate", "numpy", "repro")},
    }


def _gpu(cfg) -> str:
    if cfg.sandbox_backend != "docker" or cfg.gpu == "off":
        return "no (CPU only)"
    try:
        from sandbox.docker import gpu_available

        return "NVIDIA GPU (the engine hands it to every sandbox)" if gpu_available() else "no (CPU only: the " \
            "engine has no NVIDIA runtime)"
    except Exception:  # noqa: BLE001 — no engine here now: say what was asked
        return "requested when available"


def report(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    ctx.progress("node", name="report", detail=str(cfg.run_dir))
    status = state.get("status") or "running"
    final = "done" if status == "running" else status
    data = build_report_data({**state, "status": final}, cfg, {"agent": ctx.model.name, "judge": ctx.judge_model.name})
    paths = write_report(data, cfg.run_dir)
    return {"report": paths, "status": final, "node_log": ["report"]}
