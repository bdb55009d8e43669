"""The code browser (highlighted lines with judge comments beside them) and the trajectory:
every turn of the coding agent's tool loop with the diff of the files each step changed.

What the run directory holds (written by agent/loop and agent/workspace.py; read here):

* ``trajectory/<turn>.json`` — one model turn: notes, menu, guide, reply (text + calls), results;
* ``steps/<n>.json`` — ``{"step": n, "files": {path: sha256}}``, the submission after turn n
  (written after file-changing tools, and once more when the loop ends or a reviewer edits);
* ``blobs/<sha[:2]>/<sha>`` — every version of every file, content-addressed.

A step's diff compares its manifest with the previous step's (an empty submission before the
first), file texts coming from the blobs.
"""
from __future__ import annotations

import difflib
import json
import re
from html import escape
from pathlib import Path

from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from graders.citations import evidence_files

MAX_DIFF_LINES = 2000
MAX_BLOB_BYTES = 2 << 20
#: outputs longer than this are folded (the first lines stay visible)
FOLD_LINES, FOLD_CHARS, PREVIEW_LINES = 24, 2400, 8
_SHA = re.compile(r"^[0-9a-f]{64}$")
_STEP_FILE = re.compile(r"^\d{1,8}\.json$")


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


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_steps(run_dir: Path) -> list[tuple[int, dict[str, str]]]:
    """(step, manifest) for every steps/<n>.json, in step order (unreadable files are skipped)."""
    d = Path(run_dir) / "steps"
    out = []
    for p in d.glob("*.json") if d.is_dir() else ():
        data = _read_json(p) if _STEP_FILE.match(p.name) else None
        files = (data or {}).get("files")
        if isinstance(files, dict):
            out.append((int(p.stem), {str(k): str(v) for k, v in files.items()}))
    return sorted(out)


def blob_text(run_dir: Path, sha: str) -> str | None:
    """A stored file version's text; None when it is missing, too big or not text."""
    if not _SHA.match(sha or ""):
        return None  # manifests hold sha256 hex digests; anything else is never a path
    p = Path(run_dir) / "blobs" / sha[:2] / sha
    try:
        if p.stat().st_size > MAX_BLOB_BYTES:
            return None
        return p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def diff_rows(a: str, b: str, a_name: str, b_name: str) -> tuple[list[tuple[str, str]], bool]:
    """A unified diff as (css class, line) rows, and whether it was cut at MAX_DIFF_LINES."""
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), a_name, b_name, lineterm="", n=3))
    rows = [("add" if ln.startswith("+") and not ln.startswith("+++") else
             "del" if ln.startswith("-") and not ln.startswith("---") else
             "hunk" if ln.startswith("@@") else "ctx", ln) for ln in diff[:MAX_DIFF_LINES]]
    return rows, len(diff) > MAX_DIFF_LINES


def manifest_diff(run_dir: Path, before: dict[str, str], after: dict[str, str]) -> list[dict]:
    """Per changed file: its status (added / changed / removed) and the unified diff of its texts."""
    files = []
    for name in sorted(set(before) | set(after)):
        a_sha, b_sha = before.get(name), after.get(name)
        if a_sha == b_sha:
            continue
        status = "added" if a_sha is None else "removed" if b_sha is None else "changed"
        a = blob_text(run_dir, a_sha) if a_sha else ""
        b = blob_text(run_dir, b_sha) if b_sha else ""
        entry = {"name": name, "status": status, "rows": [], "truncated": False, "unreadable": a is None or b is None}
        if not entry["unreadable"]:
            entry["rows"], entry["truncated"] = diff_rows(a, b, "/dev/null" if a_sha is None else f"a/{name}",
                                                          "/dev/null" if b_sha is None else f"b/{name}")
        files.append(entry)
    return files


def step_diffs(run_dir: Path) -> list[dict]:
    """Every step with a manifest: {"step", "prev" (the step compared against, None: the empty
    submission), "files": manifest_diff(...)}."""
    out, prev_n, prev = [], None, {}
    for n, files in load_steps(run_dir):
        out.append({"step": n, "prev": prev_n, "files": manifest_diff(run_dir, prev, files)})
        prev_n, prev = n, files
    return out


def _pretty(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _fold(text: str) -> dict:
    lines = text.splitlines()
    long = len(lines) > FOLD_LINES or len(text) > FOLD_CHARS
    preview = "\n".join(lines[:PREVIEW_LINES])[:FOLD_CHARS // 3] if long else text
    return {"text": text, "long": long, "preview": preview, "lines": len(lines), "chars": len(text)}


def _arguments(args) -> list[tuple[str, dict]]:
    """A call's arguments as (name, folded text): strings shown as they are (file contents,
    commands), anything else as JSON."""
    if isinstance(args, dict):
        return [(str(k), _fold(_pretty(v))) for k, v in args.items()]
    return [("arguments", _fold(_pretty(args)))] if args not in (None, "", {}) else []


def full_log(result: dict | None, files: set[str]) -> str | None:
    """The run-relative path of a call's full log, when the code browser can show it: the
    workspace keeps each command's whole output in .repro/logs/ and the loop's end copies it to
    logs/workspace/ (agent/workspace.py copy_logs); the result itself holds only its head and tail."""
    rel = ((result or {}).get("meta") or {}).get("log")
    if not isinstance(rel, str) or not rel.startswith(".repro/"):
        return None
    cand = "logs/workspace/" + rel[len(".repro/"):]
    return cand if cand in files else None


def trajectory_view(run_dir: Path, checkpointed_turn: int | None = None) -> dict:
    """The tool loop as the trajectory page shows it: every turn with its notes, menu (when the
    guide narrowed it), reply and calls joined with their results (and full logs), and the diff
    of the step the turn wrote. Steps with no turn file of their own (the loop's final sync, a
    reviewer's edit after the last turn) become entries of their own."""
    run_dir = Path(run_dir)
    browsable = set(file_tree(run_dir))
    tdir = run_dir / "trajectory"
    records = []
    for p in sorted(tdir.glob("*.json")) if tdir.is_dir() else ():
        t = _read_json(p)
        if t is not None and isinstance(t.get("turn"), int):
            records.append(t)
    diffs = {s["step"]: s for s in step_diffs(run_dir)}
    turns = []
    for t in records:
        reply = t.get("reply") or {}
        results = {r.get("id"): r for r in t.get("results") or [] if isinstance(r, dict)}
        calls, touched = [], set()
        for i, c in enumerate(reply.get("calls") or []):
            r = results.pop(c.get("id"), None)
            ch = (r or {}).get("changes") or None
            for k in ("added", "changed", "removed"):
                touched.update((ch or {}).get(k) or [])
            calls.append({"index": i + 1, "name": c.get("name") or "?", "error": c.get("error"),
                          "arguments": _arguments(c.get("arguments")), "result": r, "log": full_log(r, browsable),
                          "output": _fold(str((r or {}).get("content") or "")) if r else None,
                          "changes": ch if ch and any(ch.get(k) for k in ("added", "changed", "removed")) else None})
        for r in results.values():  # a result without its call in the reply (should not happen): still shown
            calls.append({"index": len(calls) + 1, "name": r.get("name") or "?", "error": None,
                          "arguments": _arguments(r.get("arguments")), "result": r, "log": full_log(r, browsable),
                          "output": _fold(str(r.get("content") or "")), "changes": r.get("changes")})
        step = diffs.pop(t["turn"], None)
        if step:
            for f in step["files"]:
                f["by_call"] = f["name"] in touched
        menu = [str(m) for m in t.get("menu") or []]
        turns.append({"turn": t["turn"], "at": t.get("at"), "notes": [str(n) for n in t.get("notes") or []],
                      "menu": menu, "guide": t.get("guide"), "options": t.get("options") or len(menu),
                      "decided_by": t.get("decided_by") or ("guide" if t.get("guide") and len(menu) == 1 else "model"), "free_arguments": t.get("free_arguments") or [],
                      "text": reply.get("text") or "",
                      "reask": t.get("reask"), "calls": calls, "step": step, "usage": t.get("usage") or {},
                      "uncheckpointed": checkpointed_turn is not None and t["turn"] > checkpointed_turn})
    # steps that no turn wrote (turn 0, or a turn whose file is gone): shown at their place
    for n, step in diffs.items():
        if not step["files"]:
            continue
        for f in step["files"]:
            f["by_call"] = False
        turns.append({"turn": n, "at": None, "notes": [], "menu": [], "guide": None, "text": "", "reask": None,
                      "calls": [], "step": step, "usage": {}, "uncheckpointed": False, "step_only": True})
    turns.sort(key=lambda x: (x["turn"], bool(x.get("step_only"))))
    real = [t for t in turns if not t.get("step_only")]
    return {"turns": turns, "tool_calls": sum(len(t["calls"]) for t in turns),
            "guide_calls": sum(len(t["calls"]) for t in real if t.get("decided_by") == "guide"),
            "changing": sum(1 for t in turns if t["step"] and t["step"]["files"])}
