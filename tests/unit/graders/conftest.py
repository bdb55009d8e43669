import importlib.util
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "graders"


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
    for cand in (os.environ.get("REPRO_PAPERBENCH_DIR"), "/work/shared/paperbench"):
        if cand and (Path(cand) / "rubrics").is_dir():
            return Path(cand)
    pytest.skip("full PaperBench data not found (set REPRO_PAPERBENCH_DIR)")
