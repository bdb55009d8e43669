"""Claims across seeds: means with 95% intervals, and a verdict per claim that says when the
numbers cannot tell. Pure arithmetic (no scipy): Student's t quantiles from a table."""
from __future__ import annotations

import math
from typing import Literal

# two-sided 95% quantiles of Student's t by degrees of freedom (larger df: the closest below)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 60: 2.000, 120: 1.980}

Verdict = Literal["replicated", "not replicated", "inconclusive"]

#: A paper's absolute number on a setup that is not ours (a substituted model or dataset, a scaled-
#: down run: any recorded deviation): shown beside ours, never tested against it — no Δ, no verdict.
NOT_COMPARABLE = "not comparable"

#: An experiment's status, one meaning each, in the report, report.json and the UI. A claim's
#: verdict (above) is about one claim; an experiment's status is about all its checks and claims.
EXPERIMENT_STATUS = {
    "replicated": "it ran, and every check and claim that compares it with the paper passed",
    "results differ": "it ran, and a check or claim that compares it with the paper failed",
    "inconclusive": "it ran, no check failed, and a claim cannot tell: its interval across seeds crosses the "
                    "edge, or a number it compares with was not reproduced",
    "ran, no comparable target": "it ran, but no check or claim compares its numbers with the paper's "
                                 "(none exists, or the setup differs from the paper's)",
    "failed": "it was attempted, but the reproduction wrote no valid results for it",
    "not attempted": "the submission has no code that reports it",
}


def t95(df: int) -> float:
    if df <= 0:
        return float("inf")
    return next((_T95[k] for k in sorted(_T95, reverse=True) if k <= df), 1.96) if df <= 120 else 1.96


def mean_ci(values: list[float]) -> dict:
    """{"n", "mean", "sd", "low", "high", "half"}: the t-interval of the mean (n = 1: no interval)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "low": None, "high": None, "half": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "half": half}


def claim_verdict(values: list[float], paper: float, tolerance: float) -> dict:
    """Does the paper's value hold across seeds? Replicated: the whole interval lies within the
    tolerance of the paper's value. Not replicated: none of it does. Inconclusive: the interval
    straddles the edge (too wide, or too close, to tell). One seed: the single number decides."""
    ci = mean_ci(values)
    lo_ok, hi_ok = paper - tolerance, paper + tolerance
    if ci["n"] < 2:
        v: Verdict = "replicated" if abs(ci["mean"] - paper) <= tolerance else "not replicated"
        why = f"one seed: |{ci['mean']:.4g} - {paper:.4g}| {'<=' if v == 'replicated' else '>'} {tolerance:g}"
    elif lo_ok <= ci["low"] and ci["high"] <= hi_ok:
        v, why = "replicated", f"the 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] lies within {paper:.4g} ± {tolerance:g}"
    elif ci["high"] < lo_ok or ci["low"] > hi_ok:
        v, why = "not replicated", (f"the 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] lies outside "
                                    f"{paper:.4g} ± {tolerance:g}")
    else:
        v, why = "inconclusive", (f"the 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] crosses the edge of "
                                  f"{paper:.4g} ± {tolerance:g}: more seeds, or less variance, would tell")
    return {**ci, "paper": paper, "tolerance": tolerance, "verdict": v, "why": why}


def paired_verdict(xs: list[float], ys: list[float], margin: float = 0.0) -> dict:
    """A comparative claim ("x beats y by more than margin") on the per-seed differences x - y."""
    diffs = [x - y for x, y in zip(xs, ys)]
    ci = mean_ci(diffs)
    if ci["n"] < 2:
        v: Verdict = "replicated" if ci["mean"] > margin else "not replicated"
        why = f"one seed: the difference {ci['mean']:.4g} {'>' if v == 'replicated' else '<='} {margin:g}"
    elif ci["low"] > margin:
        v, why = "replicated", f"the paired differences' 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] is above {margin:g}"
    elif ci["high"] <= margin:
        v, why = "not replicated", f"the paired differences' 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] is at or below {margin:g}"
    else:
        v, why = "inconclusive", f"the paired differences' 95% interval [{ci['low']:.4g}, {ci['high']:.4g}] contains {margin:g}"
    return {**ci, "margin": margin, "verdict": v, "why": why, "differences": diffs}
