"""The code browser: highlighted lines with judge comments beside them, and iteration diffs.

Debug snapshots follow one convention (written by the debug node; read here):
``runs/<id>/iterations/<n>/<file>`` holds the submission as it was *before* debug edit n+1
(``0`` = as first implemented); ``submission/`` is the final state.
"""
from __future__ import annotations

import difflib
from html import escape
from pathlib import Path

from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from graders.citations import evidence_files

MAX_DIFF_LINES = 2000


def _css_class(ttype) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight_lines(text: str, filename: str) -> list[str]:
    """One HTML string per source line (pygments tokens split at newlines, so a docstring
    spanning lines still gets one table row per line)."""
    try:
        lexer = get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    lines, cur = [], []
    for ttype, value in lexer.get_tokens(text):
        cls = _css_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append("".join(cur))
                cur = []
            if part:
                cur.append(f'<span class="{cls}">{escape(part)}</span>' if cls else escape(part))
    if cur:
        lines.append("".join(cur))
    n = len(text.splitlines())
    return (lines + [""] * n)[:n] if n else []


def parse_range(spec: str | None) -> tuple[int, int] | None:
    """"12-18" or "12" -> (12, 18); anything else -> None."""
    if not spec:
        return None
    a, _, b = spec.partition("-")
    if not a.isdigit() or (b and not b.isdigit()):
        return None
    start = int(a)
    return start, max(start, int(b) if b else start)


def comments_for(report: dict | None, rel: str) -> dict[int, list[dict]]:
    """Line -> judge verdicts whose evidence starts there (line 1 when the whole file is cited)."""
    if not report or not report.get("graded_tree"):
        return {}
    leaves, stack = {}, [report["graded_tree"]]
    while stack:
        n = stack.pop()
        stack.extend(n.get("sub_tasks") or [])
        if not n.get("sub_tasks"):
            leaves[n["id"]] = n
    out: dict[int, list[dict]] = {}
    for leaf_id, links in (report.get("evidence") or {}).items():
        leaf = leaves.get(leaf_id)
        for e in links:
            if leaf and e["file"] == rel:
                out.setdefault(e["start"] or 1, []).append({
                    "leaf_id": leaf_id, "requirements": leaf.get("requirements", ""), "score": leaf.get("score"),
                    "valid": leaf.get("valid_score"), "explanation": leaf.get("explanation", ""),
                    "kind": e["kind"], "start": e["start"], "end": e["end"]})
    return out


def file_tree(run_dir: Path) -> list[str]:
    return list(evidence_files(run_dir))


def _snapshots(run_dir: Path) -> list[tuple[str, Path]]:
    it = run_dir / "iterations"
    snaps = sorted((p for p in it.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
        if it.is_dir() else []
    out = [(f"iteration {p.name}" if p.name != "0" else "as implemented", p) for p in snaps]
    if (run_dir / "submission").is_dir():
        out.append(("final submission", run_dir / "submission"))
    return out


def _text_files(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 1_000_000:
            try:
                out[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return out


def iteration_diffs(run_dir: Path) -> list[dict]:
    """Consecutive snapshot pairs -> per-file unified diffs, as (css class, line) rows."""
    snaps = _snapshots(Path(run_dir))
    steps = []
    for (a_name, a), (b_name, b) in zip(snaps, snaps[1:]):
        fa, fb = _text_files(a), _text_files(b)
        files = []
        for name in sorted(set(fa) | set(fb)):
            if fa.get(name) == fb.get(name):
                continue
            diff = list(difflib.unified_diff((fa.get(name) or "").splitlines(), (fb.get(name) or "").splitlines(),
                                             f"{a_name}/{name}", f"{b_name}/{name}", lineterm="", n=3))
            rows = [("add" if ln.startswith("+") and not ln.startswith("+++") else
                     "del" if ln.startswith("-") and not ln.startswith("---") else
                     "hunk" if ln.startswith("@@") else "ctx", ln) for ln in diff[:MAX_DIFF_LINES]]
            files.append({"name": name, "rows": rows, "truncated": len(diff) > MAX_DIFF_LINES})
        steps.append({"from": a_name, "to": b_name, "files": files})
    return steps
