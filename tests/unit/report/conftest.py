import importlib.util
import sys
from pathlib import Path

import pytest


def load_fixture_module():
    path = Path(__file__).resolve().parent / "fixture_run.py"
    if "repro_fixture_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("repro_fixture_run", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["repro_fixture_run"] = mod
    return sys.modules["repro_fixture_run"]


@pytest.fixture(scope="session")
def fx():
    return load_fixture_module()


@pytest.fixture
def runs_dir(tmp_path, fx):
    fx.finished_run(tmp_path)
    fx.paused_run(tmp_path)
    fx.running_run(tmp_path)
    return tmp_path
