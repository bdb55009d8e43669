"""Issue 23: under `make test` (REPRO_REQUIRE_ALL=1) only declared skips skip. The mechanism of
tests/conftest.py (need, declared_skip, the report hooks, the summary) runs here on a generated
test directory, through pytester, with and without the strict switch."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

# The generated directory's conftest: the real tests/conftest.py, loaded by path, lends it its hooks
# and, as fixtures, its helpers.
INNER_CONFTEST = f"""
import importlib.util

import pytest

_spec = importlib.util.spec_from_file_location("repro_tests_conftest_under_test", {str(CONFTEST)!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
pytest_runtest_makereport = _mod.pytest_runtest_makereport
pytest_make_collect_report = _mod.pytest_make_collect_report
pytest_terminal_summary = _mod.pytest_terminal_summary


@pytest.fixture
def need():
    return _mod.need


@pytest.fixture
def need_import():
    return _mod.need_import


@pytest.fixture
def declared_skip():
    return _mod.declared_skip
"""

TESTS = """
import pytest


def test_passes():
    pass


def test_undeclared_skip():
    pytest.skip("the frobnicator is not installed")


@pytest.mark.skipif(True, reason="marker says no widget")
def test_skipif_marker():
    pass


def test_declared(declared_skip):
    declared_skip("no GPU runtime on this host")


def test_need_met(need):
    need(None, "a thing that is there")


def test_need_missing(need):
    need("no gizmo on PATH", "the gizmo (apt-get install gizmo)")


def test_need_import_missing(need_import):
    need_import("repro_no_such_module_xyz", "the xyz package")


@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False


@pytest.mark.deselectme
def test_deselected():
    pytest.skip("never runs: deselected with -m")
"""


@pytest.fixture
def suite(pytester, monkeypatch):
    for var in ("REPRO_REQUIRE_ALL", "REPRO_REQUIRE_DOCKER"):
        monkeypatch.delenv(var, raising=False)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    deselectme: deselected in these runs\n")
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def _run(pytester):
    return pytester.runpytest("-m", "not deselectme", "-rs")


def test_strict_fails_every_undeclared_skip_with_its_reason(suite, monkeypatch):
    monkeypatch.setenv("REPRO_REQUIRE_ALL", "1")
    result = _run(suite)
    # the body's skip, need() and need_import() fail in the call; the skipif marker in setup (error)
    result.assert_outcomes(passed=2, failed=3, errors=1, skipped=1, xfailed=1, deselected=1)
    out = result.stdout.str()
    assert "REPRO_REQUIRE_ALL=1 allows only declared skips, but this test skipped" in out
    assert "the frobnicator is not installed" in out and "marker says no widget" in out
    assert "REPRO_REQUIRE_ALL=1 requires the gizmo (apt-get install gizmo), but no gizmo on PATH" in out
    assert "REPRO_REQUIRE_ALL=1 requires the xyz package, but import repro_no_such_module_xyz failed" in out
    result.stdout.fnmatch_lines(["declared skips (1):", "  test_suite.py::test_declared: no GPU runtime on this host"])
    assert "undeclared skips" not in out and "never runs" not in out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_without_strict_every_skip_stays_a_skip_and_is_listed(suite):
    result = _run(suite)
    result.assert_outcomes(passed=2, skipped=5, xfailed=1, deselected=1)
    out = result.stdout.str()
    assert "allows only declared skips" not in out
    result.stdout.fnmatch_lines([
        "declared skips (1):",
        "  test_suite.py::test_declared: no GPU runtime on this host",
        "undeclared skips (4), each a failure under REPRO_REQUIRE_ALL=1 (make test):",
        "  test_suite.py::test_undeclared_skip: the frobnicator is not installed",
        "  test_suite.py::test_skipif_marker: marker says no widget",
        "  test_suite.py::test_need_missing: needs the gizmo (apt-get install gizmo): no gizmo on PATH",
        "  test_suite.py::test_need_import_missing: needs the xyz package: import repro_no_such_module_xyz failed*",
    ])
    assert result.ret == pytest.ExitCode.OK


def test_the_docker_switch_alone_fails_only_its_own_requirement(suite, monkeypatch):
    """REPRO_REQUIRE_DOCKER=1, the older switch: need(..., also=...) fails; other skips stay skips."""
    monkeypatch.setenv("REPRO_REQUIRE_DOCKER", "1")
    suite.makepyfile(test_docker="""
def test_engine(need):
    need("none answers (DockerException: no socket)", "a Docker engine", also="REPRO_REQUIRE_DOCKER")
""")
    result = suite.runpytest("-m", "not deselectme", "test_docker.py", "test_suite.py")
    result.assert_outcomes(passed=2, failed=1, skipped=5, xfailed=1, deselected=1)
    result.stdout.fnmatch_lines(["*REPRO_REQUIRE_DOCKER=1 requires a Docker engine, but none answers*"])


def test_strict_fails_a_module_level_skip_at_collection(suite, monkeypatch):
    monkeypatch.setenv("REPRO_REQUIRE_ALL", "1")
    suite.makepyfile(test_mod="""
import pytest
pytest.importorskip("repro_no_such_module_xyz")


def test_never():
    pass
""")
    result = suite.runpytest("test_mod.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*REPRO_REQUIRE_ALL=1 allows only declared skips*repro_no_such_module_xyz*"])
    assert result.ret != pytest.ExitCode.OK
