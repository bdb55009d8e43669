"""Fixtures shared by the grader tests (unit and hostile): test doubles and PaperBench data.

Requirements and skips (issue 23). A test that needs something the machine may lack (Docker, the
shared data beside the repo, Chromium, tesseract, bubblewrap, an installed package) asks for it
with `need(problem, what)` (or `need_import`, `need_shared`, `need_docker`): on a developer's
partial machine it skips, under `make test` (REPRO_REQUIRE_ALL=1, what CI runs) it fails with
the reason. The only skips allowed there are declared ones, `declared_skip(reason)` (no GPU
runtime, no gVisor, a backend's known exception); a hook below turns any other skip into a
failure and the terminal summary lists the declared skips. Test modules import the helpers with
`from tests.conftest import need, ...` (pytest's importlib mode names this module so).
"""
import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "graders"

# Tests send traffic to loopback only: the asset broker never probes a public Hub here ("auto"
# would), and keeps its cache in a directory of this session, not the user's. Tests that serve a
# fake Hub on 127.0.0.1 set HF_ENDPOINT and the mode themselves. Subprocesses inherit both.
os.environ["REPRO_ASSETS"] = "offline"
os.environ.pop("HF_ENDPOINT", None)
if "REPRO_ASSET_CACHE" not in os.environ:
    import tempfile

    os.environ["REPRO_ASSET_CACHE"] = tempfile.mkdtemp(prefix="repro-test-assets-")

# The data beside the repo (papers, PaperBench): ../shared, or $REPRO_SHARED_DIR.
SHARED = Path(os.environ.get("REPRO_SHARED_DIR") or TESTS.parent.parent / "shared")

STRICT = "REPRO_REQUIRE_ALL"  # =1: every requirement must be met (make test, CI)
DOCKER_STRICT = "REPRO_REQUIRE_DOCKER"  # =1: the Docker engine must answer (the older, narrower switch)
DECLARED = "declared: "  # the prefix of a skip that is allowed under REPRO_REQUIRE_ALL=1


def strict() -> bool:
    """Whether every requirement must be met here (`make test` sets REPRO_REQUIRE_ALL=1)."""
    return os.environ.get(STRICT) == "1"


def need(problem: str | None, what: str, *, also: str | None = None) -> None:
    """The one gate for a test's requirement: returns when `problem` is None (the requirement is
    met); else fails the test under REPRO_REQUIRE_ALL=1 (or the env var `also`, set to 1) and
    skips it otherwise, saying in both cases `what` is needed and `problem`, why it is missing."""
    __tracebackhide__ = True  # the skip or failure points at the test, not here
    if problem is None:
        return
    for var in (STRICT, also):
        if var and os.environ.get(var) == "1":
            pytest.fail(f"{var}=1 requires {what}, but {problem}", pytrace=False)
    pytest.skip(f"needs {what}: {problem}")


def need_import(name: str, what: str | None = None) -> ModuleType:
    """`pytest.importorskip` for a hard dependency: the module, or need() with the ImportError."""
    __tracebackhide__ = True  # the skip or failure points at the test, not here
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        problem = f"import {name} failed: {type(exc).__name__}: {exc}"
    need(problem, what or f"the {name} package")  # outside the except: no chained traceback
    raise AssertionError("unreachable: need() has failed or skipped")


def need_shared(sub: str) -> Path:
    """A path in the data beside the repo (../shared or $REPRO_SHARED_DIR), which must exist."""
    __tracebackhide__ = True  # the skip or failure points at the test, not here
    path = SHARED / sub
    need(None if path.exists() else f"{path} does not exist",
         f"shared/{sub} beside the repo (checked out at ../shared, or REPRO_SHARED_DIR)")
    return path


def declared_skip(reason: str) -> None:
    """A skip that is allowed everywhere, `make test` included: the host cannot run the test by
    design (no GPU runtime, no gVisor, a backend's declared exception), nothing is broken."""
    __tracebackhide__ = True  # the skip or failure points at the test, not here
    pytest.skip(DECLARED + reason)


def _skip_reason(rep) -> str:
    longrepr = rep.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _undeclared(rep) -> bool:
    return rep.skipped and not hasattr(rep, "wasxfail") and not _skip_reason(rep).startswith(DECLARED)


def _fail_undeclared(rep) -> None:
    """Under REPRO_REQUIRE_ALL=1 a skip that is not declared is a failure that names its reason:
    the safety net for skips that bypass need() (a skipif marker, an importorskip, a new skip)."""
    if strict() and _undeclared(rep):
        where = f"{rep.longrepr[0]}:{rep.longrepr[1]}: " if isinstance(rep.longrepr, tuple) else ""
        rep.outcome = "failed"
        rep.longrepr = (f"{STRICT}=1 allows only declared skips, but this test skipped: {where}"
                        f"{_skip_reason(rep)}\n(a missing requirement must fail here: use need() from "
                        "tests/conftest.py; a skip that is fine in CI uses declared_skip())")


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees the final outcome
def pytest_runtest_makereport(item, call):
    rep = yield
    _fail_undeclared(rep)
    return rep


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees the final outcome
def pytest_make_collect_report(collector):
    rep = yield  # a module-level skip (importorskip, allow_module_level) skips at collection
    _fail_undeclared(rep)
    return rep


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: prints after pytest's short summary
def pytest_terminal_summary(terminalreporter):
    """The declared skips, each with its reason, at the end (and, off `make test`, the others)."""
    yield
    skips = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    declared = [r for r in skips if not _undeclared(r)]
    other = [r for r in skips if _undeclared(r)]
    if not (declared or other or strict()):
        return
    terminalreporter.write_sep("-", "skips")
    for title, reps in ((f"declared skips ({len(declared)}):", declared),
                        (f"undeclared skips ({len(other)}), each a failure under {STRICT}=1 (make test):", other)):
        if reps or title.startswith("declared"):
            terminalreporter.write_line(title)
            for r in reps:
                terminalreporter.write_line(f"  {r.nodeid}: {_skip_reason(r).removeprefix(DECLARED)}")


def _load_doubles():
    spec = importlib.util.spec_from_file_location("graders_test_doubles", FIXTURES / "doubles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def doubles():
    return _load_doubles()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def paperbench_dir() -> Path:
    """The full PaperBench data (23 rubrics, 5 graded trees): a requirement (need) of the tests using it."""
    cands = [Path(c) for c in (os.environ.get("REPRO_PAPERBENCH_DIR"), SHARED / "paperbench") if c]
    for cand in cands:
        if (cand / "rubrics").is_dir():
            return cand
    need(f"no rubrics/ in {' or '.join(map(str, cands))}",
         "the full PaperBench data (../shared/paperbench, or REPRO_PAPERBENCH_DIR)")


def docker_problem() -> str | None:
    """Why no Docker engine answers (None: one does), asked through the SDK, never a client on PATH."""
    try:
        from sandbox.docker import client

        client()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means there is no engine to test against
        return f"none answers ({type(exc).__name__}: {exc})"


def need_docker() -> None:
    """Skip a Docker test where no engine answers — but fail it where one must (`make test`, CI:
    setup has started an engine, so a skip there would hide a broken sandbox; REPRO_REQUIRE_DOCKER=1
    asks for the engine alone)."""
    need(docker_problem(), "a Docker engine", also=DOCKER_STRICT)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """An engine answers and the sandbox image is built (sandboxes never build it themselves)."""
    need_docker()
    from sandbox.image import ensure_image

    ensure_image()
