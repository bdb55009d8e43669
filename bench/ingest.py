"""Ingestion throughput: pages/second of papers.load_paper (with tables) vs plain
pymupdf ``page.get_text()`` over the same PDFs, side by side in one run, pinned to one core.

    python bench/ingest.py [DIR] [--reps 5]      # default DIR: <repo>/../shared/papers/real

Like for like: both sides read the same files in the same process with a warm cache (one
unmeasured warm-up pass of each side first: page cache, pymupdf's font and import caches),
then ``--reps`` passes interleaved (plain, full, plain, full, ...); each pass covers every
file, and the medians are compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pymupdf  # noqa: E402  (bench is part of the papers tooling)

from papers import load_paper  # noqa: E402


def plain_pass(files: list[Path]) -> int:
    pages = 0
    for f in files:
        with pymupdf.open(f) as doc:
            for page in doc:
                page.get_text()
                pages += 1
    return pages


def full_pass(files: list[Path]) -> tuple[int, int]:
    """Full ingestion (text, layout, hidden-text check, tables, results, hyper-parameters)."""
    n_tables = n_results = 0
    for f in files:
        p = load_paper(f)
        n_tables += len(p.tables)
        n_results += len(p.results)
    return n_tables, n_results


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, default=REPO / ".." / "shared" / "papers" / "real")
    ap.add_argument("--reps", type=int, default=5, help="measured passes per side (median reported)")
    a = ap.parse_args()
    files = sorted(a.dir.glob("*.pdf"))
    if not files:
        sys.exit(f"no PDFs in {a.dir}")
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core for both sides
    # warm-up, not measured: one pass of each side
    pages = plain_pass(files)
    n_tables, n_results = full_pass(files)
    plain, full = [], []
    for _ in range(a.reps):  # interleaved so drift hits both sides alike
        t, n = timed(plain_pass, files)
        assert n == pages
        plain.append(t)
        t, _ = timed(full_pass, files)
        full.append(t)
    mp, mf = statistics.median(plain), statistics.median(full)
    print(f"files={len(files)} pages={pages} tables={n_tables} results={n_results}; cpu {cpu} only; "
          f"warm cache (1 warm-up pass each); median of {a.reps} interleaved passes")
    print(f"plain get_text: {mp:.2f}s  {pages / mp:.1f} pages/s  (passes {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"load_paper:     {mf:.2f}s  {pages / mf:.1f} pages/s  (with tables; passes "
          f"{', '.join(f'{x:.2f}' for x in full)})")
    print(f"ratio load_paper/plain time (median vs median): {mf / mp:.1f}x")


if __name__ == "__main__":
    main()
