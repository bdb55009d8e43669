"""Links from the report to evidence: which file and lines a judge verdict or a number rests on.

Two kinds of links, always labelled so a reader can tell them apart:
- ``cited``: the judge named the file (``train.py:42``, ``train.py line 40-45``, ``train.py#L3``,
  or ``judge_metadata["citations"]``);
- ``matched``: the judge named nothing, so we point at the lines that share the most words
  and numbers with the criterion — a reading aid, not the judge's claim.
"""
from __future__ import annotations

import re
from pathlib import Path

# Where evidence lives in a run directory; the agent's own LLM log is not evidence.
ROOTS = ("submission", "reproduction", "logs")
SKIP = {"embedded-llm.log", ".repro_start"}
MAX_FILE_BYTES = 2_000_000
TEXT_SUFFIXES = {".py", ".sh", ".md", ".json", ".log", ".txt", ".yaml", ".yml", ".cfg", ".toml", ".csv", ".ini"}
_CITE = re.compile(
    r"(?P<file>[\w./-]+\.(?:py|sh|md|json|log|txt|ya?ml|cfg|toml|csv|ini))"
    r"(?:(?::|#L|,?\s+lines?\s+|\s+L)(?P<start>\d+)(?:\s*(?:-|–|to)\s*L?(?P<end>\d+))?)?",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}|\d+(?:\.\d+)?")
_STOP = set("the and for with that this from are has have its into each code run runs its than when "
            "which after before uses use using all not only file files paper shows show".split())
# Which files each kind of criterion is about. Code criteria look at code only: a README that
# describes the method is not its implementation (the judge's own rule).
CATEGORY_FILES = {
    "Code Development": ("submission/", (".py", ".sh")),
    "Code Execution": (("reproduction/reproduce.log", "reproduction/reproduce.sh", "logs/"), (".log", ".sh")),
    "Result Analysis": (("reproduction/results/", "reproduction/reproduce.log"), (".json", ".csv", ".log", ".txt")),
}


def evidence_files(run_dir: Path) -> dict[str, Path]:
    """Relative path (posix) -> file, for every readable text file under the evidence roots."""
    run_dir = Path(run_dir)
    out: dict[str, Path] = {}
    for root in ROOTS:
        base = run_dir / root
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if (p.is_file() and not p.is_symlink() and p.name not in SKIP and p.suffix.lower() in TEXT_SUFFIXES
                    and p.stat().st_size <= MAX_FILE_BYTES):
                out[p.relative_to(run_dir).as_posix()] = p
    return out


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _resolve(name: str, files: dict[str, Path]) -> str | None:
    """A cited name -> a run-relative path: exact, else the submission's copy, else any suffix match."""
    name = name.lstrip("./")
    if name in files:
        return name
    hits = [rel for rel in files if rel == name or rel.endswith("/" + name)]
    for prefix in ("submission/", "reproduction/", "logs/"):
        for rel in hits:
            if rel.startswith(prefix):
                return rel
    return None


def excerpt(path: Path, start: int | None, end: int | None, max_lines: int = 12) -> str:
    lines = read_lines(path)
    if start is None:
        start, end = 1, min(len(lines), max_lines)
    end = min(end or start, start + max_lines - 1, len(lines))
    return "\n".join(f"{i:>4}  {lines[i - 1]}" for i in range(max(start, 1), end + 1))


def _link(rel: str, files: dict[str, Path], start: int | None, end: int | None, kind: str) -> dict:
    n = len(read_lines(files[rel]))
    if start is not None:
        start = min(max(start, 1), max(n, 1))
        end = min(max(end or start, start), max(n, 1))
    return {"file": rel, "start": start, "end": end, "kind": kind, "excerpt": excerpt(files[rel], start, end)}


def cited(text: str, metadata: object, files: dict[str, Path]) -> list[dict]:
    """Links for the files (and lines) the judge named in its explanation or metadata."""
    refs: list[tuple[str, int | None, int | None]] = []
    if isinstance(metadata, dict):
        for c in metadata.get("citations") or []:
            if isinstance(c, dict) and isinstance(c.get("file"), str):
                lines = c.get("lines") or [c.get("start"), c.get("end")]
                refs.append((c["file"], *(int(x) if isinstance(x, int) else None for x in (lines + [None])[:2])))
    for m in _CITE.finditer(text or ""):
        refs.append((m["file"], int(m["start"]) if m["start"] else None, int(m["end"]) if m["end"] else None))
    out, seen = [], set()
    for name, start, end in refs:
        rel = _resolve(name, files)
        if rel and (rel, start, end) not in seen:
            seen.add((rel, start, end))
            out.append(_link(rel, files, start, end, "cited"))
    return out


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text or "") if w.lower() not in _STOP}


def matched(requirements: str, category: str | None, files: dict[str, Path], window: int = 2) -> list[dict]:
    """The lines sharing the most words with the criterion, among the files its category is about."""
    want = _words(requirements)
    prefixes, suffixes = CATEGORY_FILES.get(category or "", CATEGORY_FILES["Code Development"])
    best: tuple[float, str, int] | None = None
    for rel, path in files.items():
        if not rel.startswith(prefixes) or not rel.endswith(suffixes):
            continue
        for i, line in enumerate(read_lines(path), 1):
            got = _words(line) & want
            # numbers (a rank of 8, a seed of 42) are the most specific thing a criterion says
            score = sum(2.0 if w[0].isdigit() else 1.0 for w in got)
            if score >= 2 and (best is None or score > best[0]):
                best = (score, rel, i)
    if best is None:
        return []
    _, rel, line = best
    return [_link(rel, files, max(line - window, 1), line + window, "matched")]


def leaf_evidence(leaf: dict, files: dict[str, Path]) -> list[dict]:
    links = cited(leaf.get("explanation", ""), leaf.get("judge_metadata"), files)
    return links or matched(leaf.get("requirements", ""), leaf.get("task_category"), files)


def json_key_line(path: Path, dotted_key: str) -> int | None:
    """Line of ``a.b`` in a pretty-printed JSON file (each key searched after its parent's line)."""
    try:
        lines = read_lines(path)
    except OSError:
        return None
    at = 0
    for part in dotted_key.split("."):
        pat = re.compile(rf'"{re.escape(part)}"\s*:')
        at = next((i for i in range(at, len(lines)) if pat.search(lines[i])), -1)
        if at < 0:
            return None
    return at + 1
