"""bench/hostile.py: the figure counts runs (not skips) and flags S/R/K/F cases with no row."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_hostile", ROOT / "bench" / "hostile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_figure_and_coverage():
    b = _bench()
    rows = [{"case": c, "backend": "docker", "outcome": "x", "classified_right": True} for c in b.CASES]
    rows[0].update(escaped=True)
    rows[1].update(leaked=True, classified_right=False)
    rows += [{"case": "F04-files", "backend": "local", "lost": True, "classified_right": True},
             {"case": "S09", "backend": "docker", "skipped": True, "reason": "no runsc"}]
    n = len(b.CASES) + 1
    assert b.figure(rows) == f"hostile: {n} runs, 1 escapes, 1 secrets leaked, 1 data lost, {n - 1}/{n} classified right"
    assert b.coverage(rows) == ([], {})  # S09 ran once, so its skip row does not count as a skip
    only_skip = [r for r in rows if r["case"] not in ("S09", "R13")] + [
        {"case": "S09", "backend": "docker", "skipped": True, "reason": "no runsc"}]
    assert b.coverage(only_skip) == (["R13"], {"S09": "no runsc"})
