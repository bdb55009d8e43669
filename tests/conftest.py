"""Fixtures shared by the grader tests (unit and hostile): test doubles and PaperBench data."""
import importlib.util
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "graders"


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
    """The full PaperBench data (23 rubrics, 5 graded trees); tests needing all of it skip without it."""
    for cand in (os.environ.get("REPRO_PAPERBENCH_DIR"), TESTS.parent.parent / "shared" / "paperbench"):
        if cand and (Path(cand) / "rubrics").is_dir():
            return Path(cand)
    pytest.skip("full PaperBench data not found (set REPRO_PAPERBENCH_DIR)")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip unless a Docker engine answers (tests marked docker use the real one)."""
    import shutil

    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    try:
        from sandbox.docker import engine_info
        engine_info()
    except Exception as exc:  # noqa: BLE001 - any failure means there is no engine to test against
        pytest.skip(f"no Docker engine: {exc}")
