"""Run the hostile sandbox cases and print the figure.

    python bench/hostile.py [extra pytest args]

Last line: ``hostile: N runs, E escapes, L secrets leaked, D data lost, C/N classified right``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "hostile" / "results" / "sandbox.jsonl"


def figure(rows: list[dict]) -> str:
    n = len(rows)
    e = sum(bool(r.get("escaped")) for r in rows)
    leaked = sum(bool(r.get("leaked")) for r in rows)
    lost = sum(bool(r.get("lost")) for r in rows)
    c = sum(bool(r.get("classified_right")) for r in rows)
    return f"hostile: {n} runs, {e} escapes, {leaked} secrets leaked, {lost} data lost, {c}/{n} classified right"


def read_rows(path: Path = RESULTS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(extra: list[str] | None = None, results: Path = RESULTS) -> tuple[int, list[dict]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HF_TOKEN")}
    env["REPRO_HOSTILE_RESULTS"] = str(results)
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "hostile" / "sandbox"), "-q", "-p", "no:cacheprovider",
           "-m", "slow or not slow", *(extra or [])]
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    return rc, read_rows(results)


def main(argv: list[str]) -> int:
    rc, rows = run(argv)
    by_case = {}
    for r in rows:
        by_case.setdefault((r["case"], r["backend"]), []).append(r)
    for (case, backend), rs in sorted(by_case.items()):
        bad = [r for r in rs if r.get("escaped") or r.get("leaked") or r.get("lost") or not r.get("classified_right")]
        print(f"  {case:<12} {backend:<8} {len(rs)} run(s) {'FAIL' if bad else 'ok'}  outcome={rs[-1]['outcome']}")
    print(figure(rows))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
