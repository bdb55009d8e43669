"""Run the hostile sandbox cases (tests/hostile/sandbox) and print the figure.

    python bench/hostile.py [extra pytest args]        # or: repro sandbox selftest

Canary secrets (OPENAI_API_KEY=sk-canary-<uuid>, HF_TOKEN=hf_canary-<uuid>, and a ~/.netrc
the suite writes) are planted in the host environment of the test process; the K cases look
for the uuid everywhere it must not be. Each run writes one JSON row; the figure is computed
from the rows, and every S/R/K/F case id must have a row (a run, or a "skipped" row saying
why this host cannot run it).

The figure counts hostile runs only. Sanity rows (cases.SANITY: a plain command after an OOM,
a benign round trip, configuration and identity checks, audits after the suite) try nothing
hostile; they are counted on a line of their own, and a failing one still fails the run. The
last two lines:

    sanity (not in the figure): M rows, E escapes, L secrets leaked, D data lost, C/M as expected
    hostile: N runs, E escapes, L secrets leaked, D data lost, C/N classified right
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "hostile" / "results" / "sandbox.jsonl"
sys.path.insert(0, str(ROOT / "tests" / "hostile" / "sandbox"))

from cases import CASES, SANITY, case_id, is_sanity  # noqa: E402


def _counts(runs: list[dict]) -> tuple[int, int, int, int, int]:
    return (len(runs), sum(bool(r.get("escaped")) for r in runs), sum(bool(r.get("leaked")) for r in runs),
            sum(bool(r.get("lost")) for r in runs), sum(bool(r.get("classified_right")) for r in runs))


def figure(rows: list[dict]) -> str:
    """The figure: hostile runs only (no skips, no sanity rows)."""
    n, e, leaked, lost, c = _counts([r for r in rows if not r.get("skipped") and not is_sanity(r)])
    return f"hostile: {n} runs, {e} escapes, {leaked} secrets leaked, {lost} data lost, {c}/{n} classified right"


def sanity_line(rows: list[dict]) -> str:
    """Sanity rows (cases.SANITY), counted apart from the figure."""
    n, e, leaked, lost, c = _counts([r for r in rows if not r.get("skipped") and is_sanity(r)])
    return (f"sanity (not in the figure): {n} rows, {e} escapes, {leaked} secrets leaked, {lost} data lost, "
            f"{c}/{n} as expected")


def sanity_failed(rows: list[dict]) -> bool:
    return any(is_sanity(r) and not r.get("skipped") and (r.get("escaped") or r.get("leaked") or r.get("lost")
                                                          or not r.get("classified_right")) for r in rows)


def coverage(rows: list[dict]) -> tuple[list[str], dict[str, str]]:
    """(case ids with no row at all, case id -> why it was skipped when it never ran)."""
    ran = {case_id(r["case"]) for r in rows if not r.get("skipped")}
    skipped = {case_id(r["case"]): r.get("reason", "") for r in rows if r.get("skipped")}
    missing = [c for c in CASES if c not in ran and c not in skipped]
    return missing, {c: why for c, why in skipped.items() if c not in ran}


def read_rows(path: Path = RESULTS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(extra: list[str] | None = None, results: Path = RESULTS) -> tuple[int, list[dict]]:
    canary = uuid.uuid4().hex
    env = dict(os.environ)
    env.update(OPENAI_API_KEY=f"sk-canary-{canary}", HF_TOKEN=f"hf_canary-{canary}", REPRO_CANARY_ID=canary,
               REPRO_HOSTILE_RESULTS=str(results))
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "hostile" / "sandbox"), "-q", "-p", "no:cacheprovider",
           *(extra or [])]
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    return rc, read_rows(results)


def main(argv: list[str]) -> int:
    rc, rows = run(argv)
    by_case: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_case.setdefault((r["case"], r["backend"]), []).append(r)
    for (case, backend), rs in sorted(by_case.items()):
        bad = [r for r in rs if not r.get("skipped") and (r.get("escaped") or r.get("leaked") or r.get("lost")
                                                          or not r.get("classified_right"))]
        state = "skipped" if all(r.get("skipped") for r in rs) else "FAIL" if bad else "ok"
        kind = "sanity" if case in SANITY else "hostile"
        print(f"  {case:<12} {backend:<12} {kind:<8} {len(rs)} run(s) {state:<7} outcome={rs[-1]['outcome']}")
    missing, skipped = coverage(rows)
    print(f"cases: {len(CASES) - len(missing) - len(skipped)}/{len(CASES)} S/R/K/F cases ran"
          + "".join(f"; {c} skipped ({why})" for c, why in sorted(skipped.items())))
    if missing:
        print(f"MISSING (no row at all): {', '.join(missing)}")
    print(sanity_line(rows))
    print(figure(rows))
    return rc or (1 if missing or sanity_failed(rows) else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
