"""Fixtures shared by the grader tests (unit and hostile): test doubles and PaperBench data."""
import importlib.util
import os
from pathlib import Path

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


def docker_problem() -> str | None:
    """Why no Docker engine answers (None: one does), asked through the SDK, never a client on PATH."""
    try:
        from sandbox.docker import client

        client()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means there is no engine to test against
        return f"no Docker engine: {exc}"


def need_docker() -> None:
    """Skip a Docker test where no engine answers — but fail it where one must (`make test`, CI:
    setup has started an engine, so a skip there would hide a broken sandbox)."""
    reason = docker_problem()
    if reason is None:
        return
    if os.environ.get("REPRO_REQUIRE_DOCKER") == "1":
        pytest.fail(f"REPRO_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """An engine answers and the sandbox image is built (sandboxes never build it themselves)."""
    need_docker()
    from sandbox.image import ensure_image

    ensure_image()
