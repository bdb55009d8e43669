"""bench/hostile.py: the figure counts hostile runs only (not skips, not sanity rows), sanity
rows are counted on their own line, and S/R/K/F cases with no row are flagged."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "tests" / "hostile" / "sandbox"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_hostile", ROOT / "bench" / "hostile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(case, backend="docker", **kw):
    return {"case": case, "backend": backend, "outcome": "x", "classified_right": True, **kw}


def test_figure_counts_hostile_runs_only():
    b = _bench()
    hostile = [_row("S01", escaped=True), _row("K01", leaked=True, classified_right=False),
               _row("F04-files", "local", lost=True), _row("R02"), _row("R02-literal")]
    # sanity rows, every one of them failing: none of it may reach the figure
    sanity = [_row("R02-after", classified_right=False), _row("F05", lost=True), _row("S07", escaped=True),
              _row("K03", "logs", leaked=True), _row("R15")]
    skips = [_row("S09", skipped=True, reason="no runsc"), _row("R13", escaped=True, skipped=True, reason="no GPU")]
    rows = hostile + sanity + skips
    assert b.figure(rows) == "hostile: 5 runs, 1 escapes, 1 secrets leaked, 1 data lost, 4/5 classified right"
    assert b.figure(rows) == b.figure(hostile + skips)  # sanity rows change nothing in the figure
    assert b.sanity_line(rows) == ("sanity (not in the figure): 5 rows, 1 escapes, 1 secrets leaked, "
                                   "1 data lost, 4/5 as expected")
    assert b.sanity_failed(rows) and not b.sanity_failed(hostile + [_row("F05"), _row("S07")] + skips)
    assert b.figure(sanity + skips) == "hostile: 0 runs, 0 escapes, 0 secrets leaked, 0 data lost, 0/0 classified right"


def test_every_row_kind_and_coverage():
    b = _bench()
    rows = [_row(c) for c in b.CASES] + [_row("F04-files", "local"),
                                         _row("S09", skipped=True, reason="no runsc")]
    n_sanity = sum(1 for c in b.CASES if c in b.SANITY)
    n = len(b.CASES) + 1 - n_sanity
    assert 0 < n_sanity < len(b.CASES)
    assert b.figure(rows) == f"hostile: {n} runs, 0 escapes, 0 secrets leaked, 0 data lost, {n}/{n} classified right"
    assert b.sanity_line(rows).startswith(f"sanity (not in the figure): {n_sanity} rows,")
    assert b.coverage(rows) == ([], {})  # S09 ran once, so its skip row does not count as a skip
    only_skip = [r for r in rows if r["case"] not in ("S09", "R13")] + [
        _row("S09", skipped=True, reason="no runsc")]
    assert b.coverage(only_skip) == (["R13"], {"S09": "no runsc"})


def test_sanity_names_are_rows_the_suite_writes():
    """A typo in SANITY would silently count a benign row as hostile: every name must be a row
    name written by tests/hostile/sandbox, and every written row must belong to a listed case."""
    b = _bench()
    written = set()
    for f in SUITE.glob("test_*.py"):
        written |= set(re.findall(r"""rec\.row\(\s*["']([A-Z]\d\d[\w-]*)["']""", f.read_text()))
    assert set(b.SANITY) <= written, set(b.SANITY) - written
    assert {b.case_id(w) for w in written} <= set(b.CASES)
    hostile = written - set(b.SANITY)
    for must in ("S01", "R01", "R02", "K01", "K05", "F01", "F04-files"):  # attacks stay in the figure
        assert must in hostile, must
