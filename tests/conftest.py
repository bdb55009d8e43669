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
