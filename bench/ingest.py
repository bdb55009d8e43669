"""Ingestion throughput: pages/second of papers.load_paper (with tables) vs plain
pymupdf ``page.get_text()`` over the same PDFs, in one run, on one core.

    python bench/ingest.py [DIR]      # default: <repo>/../shared/papers/real
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pymupdf  # noqa: E402  (bench is part of the papers tooling)

from papers import load_paper  # noqa: E402


def main() -> None:
    d = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / ".." / "shared" / "papers" / "real"
    files = sorted(d.glob("*.pdf"))
    if not files:
        sys.exit(f"no PDFs in {d}")
    # plain text baseline
    t0 = time.perf_counter()
    pages = 0
    for f in files:
        with pymupdf.open(f) as doc:
            for page in doc:
                page.get_text()
                pages += 1
    plain = time.perf_counter() - t0
    # full ingestion (text, layout, hidden-text check, tables, results, hyper-parameters)
    t0 = time.perf_counter()
    n_tables = n_results = 0
    for f in files:
        p = load_paper(f)
        n_tables += len(p.tables)
        n_results += len(p.results)
    full = time.perf_counter() - t0
    print(f"files={len(files)} pages={pages} tables={n_tables} results={n_results}")
    print(f"plain get_text: {plain:.2f}s  {pages / plain:.1f} pages/s")
    print(f"load_paper:     {full:.2f}s  {pages / full:.1f} pages/s  (with tables)")
    print(f"ratio load_paper/plain time: {full / plain:.1f}x")


if __name__ == "__main__":
    main()
