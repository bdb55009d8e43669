"""Hostile sandbox cases: canary secrets planted in the host environment, one JSON row per run.

Rows go to $REPRO_HOSTILE_RESULTS (default tests/hostile/results/sandbox.jsonl, truncated at
the start of a session); bench/hostile.py prints the figure from them.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import declared_skip, need

RESULTS = Path(os.environ.get("REPRO_HOSTILE_RESULTS")
               or Path(__file__).resolve().parents[1] / "results" / "sandbox.jsonl")
SESSION = uuid.uuid4().hex[:8]
# bench/hostile.py plants the canaries in the host environment before pytest starts and
# passes their id; run alone, the suite plants its own.
CANARY_ID = os.environ.get("REPRO_CANARY_ID") or uuid.uuid4().hex
CANARIES = {
    "OPENAI_API_KEY": f"sk-canary-{CANARY_ID}",
    "HF_TOKEN": f"hf_canary-{CANARY_ID}",
}
NETRC_CANARY = f"netrc-canary-{CANARY_ID}"


class Recorder:
    def __init__(self) -> None:
        self.created: list[dict] = []  # docker inspect of every container made by the suite
        self.policies: list[tuple[object, str | None]] = []
        self.log_dir: Path | None = None
        self.run_dir: Path | None = None  # artifacts copied out of sandboxes (K03 scans it)

    @contextmanager
    def row(self, case: str, backend: str, expected: str):
        row = {"case": case, "backend": backend, "expected": expected, "outcome": None,
               "escaped": False, "leaked": False, "lost": False, "classified_right": None, "session": SESSION}
        t0 = time.monotonic()
        try:
            yield row
        except BaseException as e:
            if row["outcome"] is None:
                row["outcome"] = f"error: {type(e).__name__}: {str(e)[:200]}"
            if row["classified_right"] is None:
                row["classified_right"] = False
            raise
        finally:
            row["duration_s"] = round(time.monotonic() - t0, 3)
            if row["classified_right"] is None:
                row["classified_right"] = row["outcome"] == expected
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with open(RESULTS, "a") as f:
                f.write(json.dumps(row) + "\n")


    def skipped(self, case: str, backend: str, reason: str, *, needs: str | None = None) -> None:
        """A case that cannot run on this host still leaves a row (excluded from the counts).
        Without `needs` the skip is declared (no GPU runtime, no gVisor: allowed under make test);
        with it (what the host lacks) it is a requirement: need() fails it under make test."""
        __tracebackhide__ = True  # the skip points at the case, not here
        row = {"case": case, "backend": backend, "expected": None, "outcome": "skipped", "skipped": True,
               "reason": reason, "escaped": False, "leaked": False, "lost": False, "classified_right": None,
               "session": SESSION, "duration_s": 0.0}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(row) + "\n")
        if needs:
            need(reason, needs)
        declared_skip(reason)


REC = Recorder()


@pytest.fixture(scope="session", autouse=True)
def _session_dirs(tmp_path_factory):
    """Fresh result rows; one log dir and one "run dir" for the whole suite (K03 scans both)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    REC.log_dir = tmp_path_factory.mktemp("hostile-logs")
    REC.run_dir = tmp_path_factory.mktemp("hostile-run")
    home = tmp_path_factory.mktemp("home")
    (home / ".netrc").write_text(f"machine api.example.invalid login canary password {NETRC_CANARY}\n")
    os.chmod(home / ".netrc", 0o600)
    return home


@pytest.fixture(scope="module", autouse=True)
def canaries(_session_dirs):
    """Plant canary secrets in the host environment and a ~/.netrc while each module runs.
    Module scope, so the environment is restored before any other test directory runs."""
    saved = {k: os.environ.get(k) for k in [*CANARIES, "HOME", "XDG_CACHE_HOME"]}
    real_home = os.environ.get("HOME", "/root")
    os.environ.update(CANARIES)
    os.environ["HOME"] = str(_session_dirs)
    # keep the asset cache where it was (symlinks only), the canary home stays clean otherwise
    os.environ["XDG_CACHE_HOME"] = saved["XDG_CACHE_HOME"] or str(Path(real_home) / ".cache")
    yield {**CANARIES, "NETRC": NETRC_CANARY}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def rec() -> Recorder:
    return REC


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"hostile-{SESSION}"


@pytest.fixture(scope="session")
def image(docker_engine) -> str:
    from sandbox.image import ensure_image

    return ensure_image()


@pytest.fixture
def make(image, run_id, rec):
    """make(policy=None, role="agent") -> DockerSandbox, tracked (inspect saved) and closed."""
    from sandbox.docker import DockerSandbox

    made = []

    def _make(policy=None, role="agent", **kw):
        sb = DockerSandbox(policy, run_id=run_id, image=image, role=role, log_dir=rec.log_dir, **kw)
        made.append(sb)
        rec.created.append(sb.inspect())
        rec.policies.append((sb.policy, sb.runtime))
        return sb

    yield _make
    for sb in made:
        sb.close()


@pytest.fixture(scope="module")
def shared(image, run_id, rec):
    from sandbox.docker import DockerSandbox

    sb = DockerSandbox(None, run_id=run_id, image=image, log_dir=rec.log_dir)
    rec.created.append(sb.inspect())
    rec.policies.append((sb.policy, sb.runtime))
    yield sb
    sb.close()


def host_pids() -> int:
    return sum(1 for p in os.listdir("/proc") if p.isdigit())


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
