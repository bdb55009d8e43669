"""The paper's claims, the unit of replication: each a sentence with its kind and the result cells
that support it, tested on the reproduction's own numbers.

- absolute: "A reaches 91.2 on SST-2" — the paper's number, compared with ours only on the paper's
  own setup; where any deviation is recorded (model, data, scale) it is ``not comparable``;
- comparative: "A beats B" (``greater``: A - B > margin) or "A is within m of B" (``within``:
  |A - B| <= m) — tested on our numbers for A and B, paired per seed;
- trend: "accuracy falls as the model shrinks" (``increasing`` / ``decreasing`` along the listed
  experiments) — every consecutive pair tested like a comparative claim.

A verdict is replicated / not replicated / inconclusive (or not comparable), with its arithmetic.
Plans give claims as dicts (agent.plan.Claim's shape); graders never import the agent.
"""
from __future__ import annotations

from graders.contract import find_metric, mapped_metric, target_ids
from graders.stats import NOT_COMPARABLE, claim_verdict, mean_ci, paired_verdict

KINDS = ("absolute", "comparative", "trend")
RELATIONS = {"comparative": ("greater", "within"), "trend": ("increasing", "decreasing")}


def percent_scale(cells: list[dict]) -> bool:
    """Whether the paper prints these numbers on a 0-100 scale (81.2, not 0.812)."""
    return any(abs(c.get("value", 0)) > 1.5 for c in cells)


def derive_claims(plan: dict) -> list[dict]:
    """Claims from the plan's own numbers, for a plan whose model gave none (a weak model, a
    fallback): each experiment's claim sentence as an absolute claim on its first target (without
    one it is listed and cannot be tested), and each
    pair of experiments the paper scores in the same table column as the comparison the paper
    makes — within a point when the two are that close, else the paper's ranking."""
    exps = plan.get("experiments") or []
    out: list[dict] = []
    for e in exps:
        t = (e.get("targets") or [None])[0]
        if e.get("claim"):  # without a cell of the paper it is listed, and cannot be tested
            out.append({"text": e["claim"], "kind": "absolute", "experiments": [e["id"]], "relation": None,
                        "margin": 0.0, "metric": (t or {}).get("metric", e.get("metric", "accuracy")),
                        "cells": [t] if t else [], "source": "paper"})
    for i, a in enumerate(exps):
        for b in exps[i + 1:]:
            for ta in a.get("targets") or []:
                tb = next((t for t in b.get("targets") or [] if (t["table"], t["column"]) == (ta["table"], ta["column"])
                           and t["row"] != ta["row"]), None)
                if tb is None:
                    continue
                point = 1.0 if percent_scale([ta, tb]) else 0.01
                gap = abs(ta["value"] - tb["value"])
                m = ta.get("metric", "accuracy")
                if gap <= point:
                    out.append({"text": f"{a['name']} is within {point:g} of {b['name']} on {m} ({ta['column']}: "
                                        f"{ta['text']} vs {tb['text']}, {ta['table']})",
                                "kind": "comparative", "experiments": [a["id"], b["id"]], "relation": "within",
                                "margin": point, "metric": m, "cells": [ta, tb], "source": "paper"})
                else:
                    (hi, thi), (lo, tlo) = sorted([(a, ta), (b, tb)], key=lambda p: -p[1]["value"])
                    out.append({"text": f"{hi['name']} reaches a higher {m} than {lo['name']} ({thi['column']}: "
                                        f"{thi['text']} vs {tlo['text']}, {thi['table']})",
                                "kind": "comparative", "experiments": [hi["id"], lo["id"]], "relation": "greater",
                                "margin": 0.0, "metric": m, "cells": [thi, tlo], "source": "paper"})
                break  # one comparison per pair: the first column they share
    return [{"id": f"C{k}", **c} for k, c in enumerate(out, 1)]


def plan_claims(plan: dict) -> list[dict]:
    """The plan's claims with ids (C1, ...): the planned ones, else those derived from its numbers."""
    given = plan.get("claims")
    if given:
        return [{**c, "id": c.get("id") or f"C{k}"} for k, c in enumerate(given, 1)]
    return derive_claims(plan)


def _cell_for(exp: dict, claim: dict) -> tuple[str | None, dict | None, str]:
    """(target id, cell, where) of ``exp`` that the claim speaks of: its target in the claim's column,
    a trained number first, else a before-training one (an experiment that is only evaluated)."""
    ids = target_ids(exp)
    cols = {c.get("column") for c in claim.get("cells") or []}
    for want in ("metrics", "before"):
        for tid, (t, where) in ids.items():
            if t.get("column") in cols and where == want:
                return tid, t, where
    return None, None, "metrics"


def number(results: dict, exp: dict | None, eid: str, claim: dict, *, by_cell: bool = False) -> tuple | None:
    """(value, how found, the same metric before training or None) of experiment ``eid`` for
    ``claim`` in one run's results: the metric its results file maps to the claim, else the one it
    maps to the claim's cell, else by name. ``by_cell``: the claim is one column of a claim on
    several, where a metric mapped to the whole claim cannot say which column it is — the cell's
    mapping comes first, and no name join (one number must not stand for every column)."""
    r = results.get(eid)
    if r is None:
        return None
    metrics, before = r.get("metrics") or {}, r.get("before") or {}
    tid, cell, where = _cell_for(exp or {}, claim)
    by_target = mapped_metric(r, target=tid, where=where) if tid is not None else None
    hit = None
    if by_cell and by_target:
        hit = (where, by_target[0], f"mapped to {tid}")
    if hit is None:
        hit = next((("metrics", m, f"mapped to {claim['id']}") for m, ref in (r.get("reproduces") or {}).items()
                    if ref.get("claim") == claim["id"] and m in metrics), None)
    if hit is None and by_target:
        hit = (where, by_target[0], f"mapped to {tid}")
    if hit is None and not by_cell:
        got = find_metric(metrics, claim.get("metric") or "accuracy", (cell or {}).get("column", ""))
        hit = ("metrics", got[0], "by name") if got else None
    if hit is None:
        return None
    part, key, how = hit
    value = (before if part == "before" else metrics)[key]
    return value, f"{part}.{key} ({how})", before.get(key) if part == "metrics" else None


def _columns(claim: dict) -> list[list[dict]]:
    """The claim's cells grouped by table column, in the order the claim gives them."""
    groups: dict[tuple, list[dict]] = {}
    for c in claim.get("cells") or []:
        groups.setdefault((c.get("table"), c.get("column")), []).append(c)
    return list(groups.values())


def _scaled(value: float, percent: bool) -> float:
    return value * 100 if percent and abs(value) <= 1.0 else value


def verdict(claim: dict, plan: dict, runs: list[dict], *, substituted: str | None) -> dict:
    """One claim tested on ``runs`` (each a run's results: {experiment: results}). ``substituted``:
    the setup's deviations in words, or None on the paper's own setup. A claim whose cells span
    several columns ("on both test sets") is tested column by column and holds only where each does."""
    groups = _columns(claim)
    if len(groups) <= 1:
        return _verdict(claim, plan, runs, substituted=substituted)
    parts = [(cells[0].get("column"), _verdict({**claim, "cells": cells}, plan, runs, substituted=substituted,
                                               by_cell=True)) for cells in groups]
    got = [p["verdict"] for _, p in parts]
    final = next((v for v in ("not replicated", "inconclusive", NOT_COMPARABLE) if v in got), "replicated")
    first = parts[0][1]
    return {**first, "cells": claim.get("cells") or [], "verdict": final,
            "numbers": {f"{e} [{col}]": v for col, p in parts for e, v in p["numbers"].items()},
            "found": {f"{e} [{col}]": h for col, p in parts for e, h in p["found"].items()},
            "columns": [{"column": col, "verdict": p["verdict"], "why": p["why"]} for col, p in parts],
            "tested": any(p.get("tested", True) for _, p in parts),
            "arithmetic": "; ".join(f"{col}: {p['arithmetic'] or p['why']}" for col, p in parts),
            "why": "; ".join(f"{col}: {p['verdict']} ({p['why']})" for col, p in parts)}


def _verdict(claim: dict, plan: dict, runs: list[dict], *, substituted: str | None, by_cell: bool = False) -> dict:
    exps = {e["id"]: e for e in plan.get("experiments") or []}
    percent = percent_scale(claim.get("cells") or [])
    series: dict[str, list[float]] = {}
    befores: dict[str, list[float]] = {}
    found: dict[str, str] = {}
    missing = []
    for eid in claim.get("experiments") or []:
        vals = []
        for res in runs:
            got = number(res, exps.get(eid), eid, claim, by_cell=by_cell)
            if got is not None:
                vals.append(_scaled(got[0], percent))
                found[eid] = got[1]
                if got[2] is not None:
                    befores.setdefault(eid, []).append(_scaled(got[2], percent))
        series[eid] = vals
        if not vals:
            missing.append(eid)
    out = {"id": claim["id"], "text": claim["text"], "kind": claim["kind"], "relation": claim.get("relation"),
           "margin": claim.get("margin", 0.0), "experiments": claim.get("experiments") or [],
           "experiment": (claim.get("experiments") or [None])[0], "cells": claim.get("cells") or [],
           "source": claim.get("source", "model"), "numbers": {e: v for e, v in series.items()}, "found": found,
           "comparative": claim["kind"] != "absolute"}
    if missing:  # "tested": False — an untested claim decides no experiment's status
        return {**out, "verdict": "inconclusive", "arithmetic": "", "tested": False,
                "why": "cannot be tested: no reproduced number for " + ", ".join(missing) + " (no results file, or "
                       "no metric of it maps to this claim)"}
    n = min(len(v) for v in series.values())
    seeds = f" over {n} seeds" if n > 1 else ""
    if claim["kind"] == "absolute":
        eid, cell = out["experiment"], (claim.get("cells") or [{}])[0]
        if "value" not in cell:
            return {**out, "verdict": "inconclusive", "arithmetic": "", "tested": False,
                    "why": "cannot be tested: the claim has no result cell of the paper to compare with"}
        tol = 3.0 if percent else 0.03
        v = claim_verdict(series[eid], cell["value"], tol)
        if substituted:
            return {**out, "verdict": NOT_COMPARABLE, "arithmetic": v["why"],
                    "why": f"the setup differs from the paper's ({substituted}): the paper's {cell.get('text')} is "
                           f"not a target for ours (ours {v['mean']:.4g}{seeds})"}
        return {**out, "verdict": v["verdict"], "arithmetic": v["why"], "why": v["why"]}
    rel, margin = claim.get("relation"), float(claim.get("margin") or 0.0)
    ids = claim["experiments"]
    if claim["kind"] == "comparative" and rel == "within":
        learned = {e: mean_ci(series[e])["mean"] - mean_ci(befores[e])["mean"] for e in ids[:2] if befores.get(e)}
        if len(learned) == 2 and all(d <= 0 for d in learned.values()):
            # two models that learned nothing are "within a point" of each other by accident
            return {**out, "verdict": "inconclusive", "arithmetic": "",
                    "why": "cannot be tested: neither experiment improved on its own before-training number ("
                           + ", ".join(f"{e}: {mean_ci(befores[e])['mean']:.4g} -> {mean_ci(series[e])['mean']:.4g}"
                                       for e in ids[:2]) + "), so their closeness says nothing about the methods"}
        a, b = (series[ids[0]][:n], series[ids[1]][:n])
        diffs = [x - y for x, y in zip(a, b)]
        v = claim_verdict(diffs, 0.0, margin)
        mean = mean_ci(diffs)["mean"]
        arith = f"{ids[0]} - {ids[1]} = {mean:+.4g}{seeds}; |difference| <= {margin:g}? {v['why']}"
        return {**out, "verdict": v["verdict"], "arithmetic": arith, "why": arith}
    pairs = list(zip(ids, ids[1:])) if claim["kind"] == "trend" else [(ids[0], ids[1])]
    parts = []
    for x, y in pairs:
        xs, ys = series[x][:n], series[y][:n]
        if rel == "increasing":  # along the list each next one is higher
            xs, ys, x, y = ys, xs, y, x
        v = paired_verdict(xs, ys, margin)
        parts.append((v["verdict"], f"{x} - {y} = {v['mean']:+.4g} ({v['why']})"))
    verdicts = [p[0] for p in parts]
    final = ("not replicated" if "not replicated" in verdicts else
             "inconclusive" if "inconclusive" in verdicts else "replicated")
    arith = "; ".join(p[1] for p in parts) + seeds
    return {**out, "verdict": final, "arithmetic": arith, "why": arith}


def verdicts(plan: dict, runs: list[dict], *, substituted: str | None) -> list[dict]:
    return [verdict(c, plan, runs, substituted=substituted) for c in plan_claims(plan)]


def setup_text(plan: dict) -> str | None:
    """The run's deviations from the paper's setup in words, or None on the paper's own setup (no
    deviation): the paper's absolute numbers are then comparable with ours."""
    devs = plan.get("deviations") or []
    if not devs:
        return None
    return "; ".join(f"{d['what']}: {d['paper']} → {d['ours']}" for d in devs[:3]) + \
        (f"; {len(devs) - 3} more" if len(devs) > 3 else "")


def leaf_check(claim_id: str, plan: dict, results: dict) -> dict:
    """A rubric leaf on a claim, decided by the claim's own verdict on the reproduced numbers (the
    report's): passed when replicated, inconclusive when it cannot be tested — so the judge never
    says "the numbers support the claim" beside a claim the arithmetic calls inconclusive."""
    claim = next((c for c in plan_claims(plan) if c["id"] == claim_id), None)
    if claim is None:
        part = {"kind": "claim", "claim": claim_id, "experiment": None, "passed": False, "inconclusive": True, "verdict": "inconclusive",
                "arithmetic": f"claim {claim_id}: not in the plan, so nothing tests it"}
    else:
        v = verdict(claim, plan, [results], substituted=setup_text(plan))
        part = {"kind": "claim", "claim": claim_id, "experiment": v.get("experiment"), "verdict": v["verdict"],
                "passed": v["verdict"] == "replicated",
                "inconclusive": v["verdict"] in ("inconclusive", NOT_COMPARABLE),
                "arithmetic": f"claim {claim_id} {v['verdict']}: {v['why']}"}
    return {**part, "file": None, "paper": None, "parts": [part], "undecided": False}
