"""Reproduction: run ``reproduce.sh`` in a *fresh* sandbox from the submission alone.

PaperBench's rule: only files written after the run's start marker count as results. Every
file copied in is first back-dated to before the marker, so a result file the agent forged
(even one with a future mtime) can never pass as produced by the reproduction.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from graders.contract import SEED_ENV, START_MARKER, read_results
from sandbox.broker.hub import DATASETS_LINK

LOG_NAME = "reproduce.log"
MARKER_NAME = START_MARKER

_BACKDATE = (
    "import os,sys\n"
    "t=float(sys.argv[1])\n"
    "for root,dirs,files in os.walk('.'):\n"
    "    for n in dirs+files:\n"
    "        p=os.path.join(root,n)\n"
    "        if not os.path.islink(p): os.utime(p,(t,t))\n"
)


@dataclass
class Reproduction:
    ok: bool
    returncode: int
    summary: str
    start_time: float
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False
    dir: str = ""
    #: experiment -> {"metrics", "before", "curves", "file", "info"} (graders.contract.read_results)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int | None = None
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def collect_results(repro_dir: Path, start_time: float) -> tuple[dict[str, dict], list[str]]:
    """Results by the submission contract (graders.contract): files written at/after the marker."""
    return read_results(repro_dir, start_time)


def reproduce(
    submission_dir: Path,
    out_dir: Path,
    open_sandbox: Callable[[str], Any],
    *,
    timeout: float = 3600,
    progress: Callable[[str], None] = lambda line: None,
    seed: int | None = None,
) -> Reproduction:
    """Run reproduce.sh in a fresh sandbox; copy the workspace back to ``out_dir`` (replaced)."""
    submission_dir = Path(submission_dir)
    if not (submission_dir / "reproduce.sh").is_file():
        raise FileNotFoundError(f"{submission_dir}/reproduce.sh is missing: nothing to reproduce")
    with open_sandbox("reproduce") as sb:
        sb.copy_in(submission_dir)
        # Marker on a whole second (tar keeps 1 s mtime resolution), strictly after the back-date.
        start = float(int(time.time()) + 2)
        sb.exec(["python", "-c", _BACKDATE, str(start - 2)], timeout=120, cwd=sb.workdir)
        time.sleep(max(0.0, start - time.time()))
        sb.write_file(MARKER_NAME, f"{start}\n")
        progress("reproduce.sh started in a fresh sandbox")
        t0 = time.monotonic()
        env = {SEED_ENV: str(seed)} if seed is not None else None
        # the asset broker's prepared datasets, mirrored into this container's writable cache first
        res = sb.exec(["bash", "-c", f"({DATASETS_LINK}) >/dev/null 2>&1; set -o pipefail; "
                                     f"bash reproduce.sh 2>&1 | tee {LOG_NAME}"],
                      timeout=timeout, cwd=sb.workdir, env=env)
        duration = time.monotonic() - t0
        Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".repro-copy-", dir=Path(out_dir).parent))
        try:
            sb.copy_out(sb.workdir, tmp, max_bytes=512 << 20)
            (copied,) = [p for p in tmp.iterdir() if p.is_dir()]
            if Path(out_dir).exists():
                shutil.rmtree(out_dir)
            copied.rename(out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log_path = Path(out_dir) / LOG_NAME
    if not log_path.exists():  # the script never started: keep what the sandbox returned
        log_path.write_text(res.stdout + res.stderr)
    results, ignored = collect_results(Path(out_dir), start)
    return Reproduction(
        ok=res.ok, returncode=res.returncode, summary=res.summary(), start_time=start, duration_s=round(duration, 1),
        timed_out=res.timed_out, oom_killed=res.oom_killed, dir=str(out_dir), results=results, ignored=ignored,
        seed=seed,
    )
