"""Every real and hostile paper through `repro run` with the defaults a newcomer has: does each
run end in a report, without a traceback, with a status and a reason per experiment?

    python bench/sweep.py [--papers DIR ...] [--only SUBSTR] [--out DIR] [--train-limit 200] [--epochs 1]

Runs the papers one after another (each run uses every core: the embedded model server, then
training), each as its own `repro run PDF --train-limit N --epochs E --assets offline` process,
on the default Docker sandbox. Prints one row per paper as it finishes and the table at the end:
paper, exit code, tracebacks seen on stderr, report written, experiments planned, statuses (with
the experiments lacking a reason counted), the tool loop's exit, wall time. A refused input (an
encrypted or unreadable PDF) is a fine outcome when it says what to do and no run directory was
made; a run directory without a report is not.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPRO_SHARED_DIR", ROOT.parent / "shared"))
DEFAULT_SETS = [SHARED / "papers" / "real", SHARED / "papers" / "hostile"]
TRACEBACK = "Traceback (most recent call last)"


def _refusal(stderr: str) -> str:
    """The line that says why the run was refused (preflight's 'cannot start: …'), else the last."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()] or [""]
    return next((ln for ln in lines if ln.startswith(("cannot start", "error", "Error"))), lines[-1])[:200]


def run_one(pdf: Path, out: Path, train_limit: int, epochs: int, timeout_s: float) -> dict:
    runs = out / pdf.stem
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "repro"), "run", str(pdf), "--train-limit", str(train_limit),
           "--epochs", str(epochs), "--assets", "offline", "--runs-dir", str(runs)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "REPRO_ASSETS": "offline", "COLUMNS": "200"})
        rc, stderr, stdout = proc.returncode, proc.stderr, proc.stdout
    except subprocess.TimeoutExpired as exc:
        rc, stderr, stdout = "timeout", (exc.stderr or b"").decode(errors="replace"), ""
    wall = time.monotonic() - t0
    (runs / "stderr.log").write_text(stderr)
    (runs / "stdout.log").write_text(stdout)
    run_dirs = [d for d in runs.iterdir() if d.is_dir()]
    reports = [d / "report.json" for d in run_dirs if (d / "report.json").is_file()]
    row = {"paper": pdf.name, "rc": rc, "tracebacks": stderr.count(TRACEBACK) + stdout.count(TRACEBACK),
           "run_dir": bool(run_dirs), "report": bool(reports), "wall_s": round(wall),
           "refused": _refusal(stderr) if not run_dirs else None}
    if reports:
        rep = json.loads(reports[0].read_text())
        exps = rep.get("experiments") or []
        row.update(status=rep.get("status"), planned=len(exps),
                   statuses=dict(Counter(e.get("status") for e in exps)),
                   no_reason=sum(1 for e in exps if not (e.get("reason") or "").strip()),
                   exit=(rep.get("agent") or {}).get("exit"), score=(rep.get("grade") or {}).get("score"),
                   reasons={e.get("id"): e.get("reason") for e in exps})
    return row


def line(r: dict) -> str:
    if not r["run_dir"]:
        return (f"{r['paper'][:44]:44} rc={r['rc']!s:7} tb={r['tracebacks']} refused before a run directory: "
                f"{r['refused']}")
    st = ", ".join(f"{k}: {v}" for k, v in (r.get("statuses") or {}).items()) or "-"
    return (f"{r['paper'][:44]:44} rc={r['rc']!s:7} tb={r['tracebacks']} report={'yes' if r['report'] else 'NO'} "
            f"planned={r.get('planned', '-')} [{st}] no-reason={r.get('no_reason', '-')} "
            f"exit={r.get('exit')} {r['wall_s']} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--papers", type=Path, action="append", help="a directory of PDFs (default: shared real + hostile)")
    ap.add_argument("--only", action="append", default=[], help="only PDFs whose name contains this")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "sweep")
    ap.add_argument("--train-limit", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per paper")
    a = ap.parse_args()
    pdfs = sorted(p for d in (a.papers or DEFAULT_SETS) for p in Path(d).glob("*.pdf")
                  if not a.only or any(s in p.name for s in a.only))
    if not pdfs:
        print("no PDFs found", file=sys.stderr)
        return 2
    rows = []
    for pdf in pdfs:
        rows.append(run_one(pdf, a.out, a.train_limit, a.epochs, a.timeout))
        print(line(rows[-1]), flush=True)
    (a.out / "sweep.json").write_text(json.dumps(rows, indent=1))
    bad = [r for r in rows if r["tracebacks"] or (r["run_dir"] and not r["report"]) or r.get("no_reason")]
    print(f"\nsweep: {len(rows)} papers, {sum(r['report'] for r in rows)} reports, "
          f"{sum(not r['run_dir'] for r in rows)} refused before a run directory, "
          f"{sum(r['tracebacks'] > 0 for r in rows)} with tracebacks, "
          f"{sum(r['run_dir'] and not r['report'] for r in rows)} run directories without a report, "
          f"{sum(r.get('no_reason') or 0 for r in rows)} experiments without a reason "
          f"(rows: {a.out / 'sweep.json'})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
