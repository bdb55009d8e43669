"""The task list: papers × seeds × configurations, and what state each (paper, seed, config) is in.

Layout under the output directory (shared storage on a cluster)::

    OUT/runs/<paper>--<config-name>-<fingerprint>--s<seed>--a<attempt>/   a normal run directory
        ... run.json, checkpoints.sqlite, report.{json,md,html} ...
        eval.json          written atomically, last: its presence means "this attempt finished"

A task's state is read from its attempts alone (no separate database to get out of step):
``done`` / ``failed`` (latest finished attempt), ``interrupted`` (latest attempt has no
eval.json: it is resumed from its checkpoint in place), ``missing`` (no attempt yet). A
finished attempt is never written to again; retrying a failure makes a new attempt.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from agent.eval.config import EvalConfig

RESULT_NAME = "eval.json"
OK_STATUSES = frozenset({"done"})


class PaperSetError(ValueError):
    """The papers directory is not a PaperBench-style set; the message says what is missing."""


class PaperEntry(BaseModel):
    """One paper of the set: <paper-id>/paper.pdf, rubric.json, optional addendum, blacklist, config."""

    model_config = ConfigDict(frozen=True)

    paper_id: str
    dir: Path
    pdf: Path
    rubric: Path | None
    title: str | None = None
    addendum: Path | None = None
    blacklist: tuple[str, ...] = ()


def slug(text: str) -> str:
    """A run-id component: lowercase [a-z0-9] words joined by single '-' (so '--' separates)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-") or "x"


def discover_papers(papers_dir: Path) -> list[PaperEntry]:
    papers_dir = Path(papers_dir)
    if not papers_dir.is_dir():
        raise PaperSetError(f"{papers_dir} is not a directory of <paper-id>/paper.pdf folders")
    out: list[PaperEntry] = []
    seen: dict[str, Path] = {}
    for d in sorted(p for p in papers_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pdf = d / "paper.pdf"
        if not pdf.is_file():
            continue
        pid = slug(d.name)
        if pid in seen:
            raise PaperSetError(f"{d} and {seen[pid]} map to the same paper id {pid!r}; rename one")
        seen[pid] = d
        title = None
        if (d / "config.yaml").is_file():
            meta = yaml.safe_load((d / "config.yaml").read_text()) or {}
            title = meta.get("title") if isinstance(meta, dict) else None
        blacklist: tuple[str, ...] = ()
        if (d / "blacklist.txt").is_file():
            blacklist = tuple(line.strip() for line in (d / "blacklist.txt").read_text().splitlines()
                              if line.strip() and not line.strip().startswith("#") and line.strip().lower() != "none")
        if (d / "rubric.json").is_file():  # checked now, not hours later at grading
            from graders.rubric import RubricError, load_rubric

            try:
                load_rubric(d / "rubric.json")
            except RubricError as exc:
                raise PaperSetError(f"{d.name}: its rubric is invalid: {exc}") from exc
        out.append(PaperEntry(paper_id=pid, dir=d.resolve(), pdf=pdf.resolve(),
                              rubric=(d / "rubric.json").resolve() if (d / "rubric.json").is_file() else None,
                              title=title, blacklist=blacklist,
                              addendum=(d / "addendum.md").resolve() if (d / "addendum.md").is_file() else None))
    if not out:
        raise PaperSetError(f"no <paper-id>/paper.pdf under {papers_dir}")
    return sorted(out, key=lambda p: p.paper_id)


class Task(BaseModel):
    """Everything a worker needs for one attempt; plain data, so Ray ships it as is."""

    model_config = ConfigDict(frozen=True)

    paper: PaperEntry
    config: EvalConfig
    seed: int
    attempt: int
    runs_dir: Path
    resume: bool = False
    cpus: float | None = None
    """This run's fair share of the machine's cores (set by the runner from its parallelism):
    each of its sandboxes gets that CPU quota and as many threads. None: all cores."""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.paper.paper_id, self.config.config_id, self.seed)

    @property
    def run_id(self) -> str:
        return f"{task_prefix(self.paper.paper_id, self.config, self.seed)}--a{self.attempt}"

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.run_id


def task_prefix(paper_id: str, config: EvalConfig, seed: int) -> str:
    return f"{paper_id}--{config.config_id}--s{seed}"


@dataclass
class TaskState:
    paper: PaperEntry
    config: EvalConfig
    seed: int
    #: attempt number -> that attempt's eval.json (None: started, never finished)
    attempts: dict[int, dict | None] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return max(self.attempts, default=0)

    @property
    def result(self) -> dict | None:
        """The latest finished attempt's eval.json."""
        done = [n for n, r in self.attempts.items() if r is not None]
        return self.attempts[max(done)] if done else None

    @property
    def status(self) -> str:
        if not self.attempts:
            return "missing"
        if self.attempts[self.latest] is None:
            return "interrupted"
        return "done" if self.attempts[self.latest].get("status") in OK_STATUSES else "failed"


def read_result(run_dir: Path) -> dict | None:
    path = Path(run_dir) / RESULT_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # cannot happen with atomic writes; treat as unfinished rather than crash


def scan(papers: list[PaperEntry], configs: list[EvalConfig], seeds: int, runs_dir: Path) -> list[TaskState]:
    states = []
    for paper in papers:
        for config in configs:
            for seed in range(seeds):
                st = TaskState(paper, config, seed)
                prefix = task_prefix(paper.paper_id, config, seed)
                for d in Path(runs_dir).glob(f"{prefix}--a*"):
                    m = re.fullmatch(re.escape(prefix) + r"--a(\d+)", d.name)
                    if m and d.is_dir():
                        st.attempts[int(m.group(1))] = read_result(d)
                states.append(st)
    return states


@dataclass
class Plan:
    run: list[Task]
    skipped_done: int
    skipped_failed: int
    resumed: int
    retried: int


def plan_tasks(states: list[TaskState], runs_dir: Path, *, retry_failed: bool) -> Plan:
    """What to run now: missing tasks (attempt 1), interrupted ones (same attempt, resumed from
    their checkpoint), and failed ones only with ``retry_failed`` (a new attempt)."""
    run: list[Task] = []
    done = failed = resumed = retried = 0
    for st in states:
        mk: dict[str, Any] = dict(paper=st.paper, config=st.config, seed=st.seed, runs_dir=Path(runs_dir))
        if st.status == "done":
            done += 1
        elif st.status == "failed" and not retry_failed:
            failed += 1
        elif st.status == "failed":
            retried += 1
            run.append(Task(**mk, attempt=st.latest + 1))
        elif st.status == "interrupted":
            resumed += 1
            run.append(Task(**mk, attempt=st.latest, resume=True))
        else:
            run.append(Task(**mk, attempt=1))
    # Interleave papers and seeds so an early stop still leaves every configuration sampled.
    run.sort(key=lambda t: (t.seed, t.paper.paper_id, t.config.name))
    return Plan(run=run, skipped_done=done, skipped_failed=failed, resumed=resumed, retried=retried)
