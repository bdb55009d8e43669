"""What the judge may see of a submission: whitelisted, capped, mtime-filtered, fenced.

Three bundles, one per leaf category:

- code (Code Development): source, config and docs from the submission directory;
- execution (Code Execution, shown after the code): the reproduction's ``reproduce.log``;
- results (Result Analysis): only files the reproduction wrote at or after the host's start
  marker, plus the log. Files older than the marker were not produced by the reproduction
  (PaperBench's mtime rule), so a results table forged by the agent never reaches the judge.

Everything read here is untrusted. ``fence`` wraps it between per-run random delimiters and
``neutralise`` defuses anything in the data that looks like our delimiters.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

DOC_EXTS = {".md", ".txt", ".rst"}
CODE_EXTS = {
    ".py", ".r", ".rmd", ".m", ".jl", ".c", ".h", ".cpp", ".hpp", ".cc", ".cu", ".java", ".js", ".ts",
    ".scala", ".go", ".rs", ".sh", ".cfg", ".config", ".json", ".yaml", ".yml", ".toml", ".ini",
}
TABLE_EXTS = {".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".tex", ".html", ".xml", ".log", ".out"}
SKIP_DIRS = {"venv", ".venv", "env", ".git", ".github", "__pycache__", "node_modules", "wandb",
             ".ipynb_checkpoints", ".cache", "site-packages", ".mypy_cache", ".pytest_cache"}
LOG_NAME = "reproduce.log"
SCRIPT_NAME = "reproduce.sh"


@dataclass(frozen=True)
class EvidenceLimits:
    per_file_chars: int = 16_000
    total_chars: int = 160_000
    max_files: int = 80
    log_chars: int = 24_000  # head and tail of reproduce.log
    max_walk_entries: int = 20_000  # stop walking a directory bomb


@dataclass(frozen=True)
class EvidenceFile:
    path: str  # relative, sanitised for display
    text: str
    truncated: bool = False


@dataclass(frozen=True)
class Evidence:
    files: tuple[EvidenceFile, ...] = ()
    # Trusted observations made by the host (never text copied from the submission).
    notes: tuple[str, ...] = ()
    digest: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{len(f.path)}:{f.path}{len(f.text)}:".encode())
            h.update(f.text.encode("utf-8", "replace"))
        for n in self.notes:
            h.update(f"note{len(n)}:{n}".encode())
        object.__setattr__(self, "digest", h.hexdigest())

    @property
    def empty(self) -> bool:
        return not self.files


@dataclass(frozen=True)
class SubmissionEvidence:
    code: Evidence
    execution: Evidence
    results: Evidence
    reproduced: bool  # a reproduction directory was given
    has_marker: bool  # a start marker was given
    fresh_outputs: int  # files the reproduction wrote after the marker (log included)
    fresh_results: int = 0  # results/<experiment>/metrics.json files (graders.contract) written after it


# ---------------------------------------------------------------- fencing
_DELIM_RE = re.compile(r"<{2,}\s*/?\s*(BEGIN|END)", re.IGNORECASE)


def new_nonce() -> str:
    return secrets.token_hex(8)


def neutralise(text: str, nonce: str) -> str:
    """Defuse anything shaped like our delimiters, and the nonce itself, inside untrusted data."""
    text = _DELIM_RE.sub(lambda m: "[delimiter removed: " + m.group(1).lower() + "]", text)
    if nonce and nonce in text:
        text = text.replace(nonce, "[nonce removed]")
    return text


def fence(label: str, text: str, nonce: str) -> str:
    label = safe_name(label)
    return f"<<<BEGIN {nonce} {label}>>>\n{neutralise(text, nonce)}\n<<<END {nonce} {label}>>>"


def safe_name(name: str) -> str:
    """File names are untrusted too: keep a plain, short, delimiter-free form."""
    return re.sub(r"[^A-Za-z0-9._/+\-]", "_", name)[:200] or "_"


# ---------------------------------------------------------------- reading
def _read_text(path: Path, max_chars: int) -> tuple[str, bool] | None:
    """Text of a regular file (never through a symlink), or None for binaries/unreadable."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(max_chars * 4 + 1)
    except OSError:
        return None
    if b"\x00" in raw[:8192]:
        return None
    text = raw.decode("utf-8", "replace")
    truncated = len(raw) > max_chars * 4 or len(text) > max_chars
    return (text[:max_chars], truncated)


def _head_tail(text: str, limit: int) -> tuple[str, bool]:
    # Final metrics are usually printed last, so keep both ends of a long log.
    if len(text) <= limit:
        return text, False
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-half:], True


def walk_files(root: Path, limits: EvidenceLimits) -> list[tuple[str, Path, float]]:
    """(relative path, path, mtime) of regular files, sorted, skipping vendored/hidden dirs."""
    out: list[tuple[str, Path, float]] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
                             and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            seen += 1
            if seen > limits.max_walk_entries:
                return out
            p = Path(dirpath) / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((p.relative_to(root).as_posix(), p, st.st_mtime))
    return out


def _priority(rel: str) -> tuple:
    name = rel.rsplit("/", 1)[-1].lower()
    ext = Path(name).suffix
    first = 0 if name.startswith("readme") else 1 if name == SCRIPT_NAME else 2
    kind = 0 if ext in CODE_EXTS - {".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".config"} else 1 \
        if ext in CODE_EXTS else 2
    return (first, kind, rel.count("/"), rel)


def _bundle(entries: list[tuple[str, Path]], limits: EvidenceLimits, notes: list[str]) -> Evidence:
    files: list[EvidenceFile] = []
    total = 0
    left_out: list[str] = []
    for rel, path in sorted(entries, key=lambda e: _priority(e[0])):
        if len(files) >= limits.max_files or total >= limits.total_chars:
            left_out.append(rel)
            continue
        got = _read_text(path, min(limits.per_file_chars, limits.total_chars - total))
        if got is None:
            continue
        text, truncated = got
        files.append(EvidenceFile(safe_name(rel), text, truncated))
        total += len(text)
    if left_out:
        shown = ", ".join(safe_name(r) for r in left_out[:30])
        notes.append(f"{len(left_out)} more file(s) not shown because of size limits: {shown}"
                     + (" ..." if len(left_out) > 30 else ""))
    return Evidence(tuple(files), tuple(notes))


# ---------------------------------------------------------------- reproduce.sh tampering (J04)
_TAMPER = [
    (re.compile(r"(^|[;&|]\s*)touch\s"), "touches files (sets mtimes without computing anything)"),
    (re.compile(r"\bsed\s+(-\w+\s+)*-i"), "edits files in place with sed"),
    (re.compile(r"\b(echo|printf|cat)\b[^|#\n]*>>?\s*\S*(result|metric|score|acc|table|\.csv|\.json|\.md)",
                re.IGNORECASE), "writes result-like files from literal text"),
    (re.compile(r"\b(cp|mv|rsync)\s[^#\n]*(result|metric|score|table|\.csv)", re.IGNORECASE),
     "copies result-like files instead of computing them"),
]


def scan_reproduce_script(text: str) -> list[str]:
    """Host notes about reproduce.sh lines that may fake results (logged, shown to the judge)."""
    notes = []
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        for rx, what in _TAMPER:
            if rx.search(stripped):
                notes.append(f"reproduce.sh line {i} {what}: {safe_name(stripped[:120])}")
                break
    return notes


# ---------------------------------------------------------------- the three bundles
def collect(
    submission_dir: Path, reproduction_dir: Path | None, start_time: float | None,
    limits: EvidenceLimits = EvidenceLimits(),
) -> SubmissionEvidence:
    submission_dir = Path(submission_dir)
    code_exts = CODE_EXTS | DOC_EXTS
    code_entries = [(rel, p) for rel, p, _ in walk_files(submission_dir, limits)
                    if Path(rel).suffix.lower() in code_exts] if submission_dir.is_dir() else []
    code_notes: list[str] = []
    if not submission_dir.is_dir():
        code_notes.append("the submission directory does not exist")
    code = _bundle(code_entries, limits, code_notes)

    script = _read_text(submission_dir / SCRIPT_NAME, limits.per_file_chars)
    tamper = scan_reproduce_script(script[0]) if script else []

    if reproduction_dir is None:
        no_repro = Evidence((), ("no reproduction was run",))
        return SubmissionEvidence(code, no_repro, no_repro, reproduced=False,
                                  has_marker=start_time is not None, fresh_outputs=0)

    reproduction_dir = Path(reproduction_dir)
    entries = walk_files(reproduction_dir, limits) if reproduction_dir.is_dir() else []
    exec_notes = list(tamper)
    if script is None:
        exec_notes.append("the submission has no reproduce.sh")
    log_file: EvidenceFile | None = None
    log_entry = next(((rel, p, m) for rel, p, m in entries if rel == LOG_NAME), None)
    if start_time is None:
        exec_notes.append("no reproduction start marker was recorded, so no output can be trusted as fresh")
    elif log_entry is None:
        exec_notes.append("the reproduction left no reproduce.log")
    elif log_entry[2] < start_time:
        exec_notes.append("reproduce.log predates the reproduction start marker and was ignored")
    else:
        got = _read_text(log_entry[1], 4 * limits.log_chars)
        if got is not None:
            text, cut = _head_tail(got[0], limits.log_chars)
            log_file = EvidenceFile(LOG_NAME, text, cut or got[1])
            if not text.strip():
                exec_notes.append("reproduce.log is empty")
    execution = Evidence((log_file,) if log_file else (), tuple(exec_notes))

    # Result Analysis: only what the reproduction itself wrote.
    result_notes = list(tamper)
    fresh: list[tuple[str, Path]] = []
    stale: list[str] = []
    binaries: list[str] = []
    if start_time is not None:
        for rel, p, mtime in entries:
            if rel == LOG_NAME:
                continue
            if mtime < start_time:
                stale.append(rel)
            elif Path(rel).suffix.lower() in DOC_EXTS | TABLE_EXTS | CODE_EXTS:
                fresh.append((rel, p))
            else:
                binaries.append(rel)
    else:
        result_notes.append("no reproduction start marker was recorded")
    if stale:
        result_notes.append(f"{len(stale)} file(s) older than the reproduction start marker were ignored")
    if binaries:
        result_notes.append("the reproduction also wrote non-text files: "
                            + ", ".join(safe_name(b) for b in binaries[:20]))
    from graders.contract import read_results

    contract_results, contract_notes = read_results(Path(reproduction_dir), start_time)
    result_notes += [n for n in contract_notes if "before the reproduction" not in n]  # stale ones are counted above
    results = _bundle(fresh, limits, result_notes)
    if log_file:
        results = Evidence(results.files + (log_file,), results.notes)
    return SubmissionEvidence(
        code, execution, results, reproduced=True, has_marker=start_time is not None,
        fresh_outputs=len(fresh) + len(binaries) + (1 if log_file else 0), fresh_results=len(contract_results),
    )
