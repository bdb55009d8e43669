"""A fake Hugging Face Hub on 127.0.0.1 (tests/fakehub.py) holding a tiny BERT-style model and
tiny labelled datasets built by the tests in Hugging Face's formats."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fakehub", TESTS / "fakehub.py")
fakehub = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakehub)


@pytest.fixture(scope="session")
def tiny_repos(tmp_path_factory):
    return fakehub.build_tiny_repos(tmp_path_factory.mktemp("hub-repos"))


@pytest.fixture
def fake_hub(tiny_repos, monkeypatch):
    """The hub, with this process pointed at it (HF_ENDPOINT, no telemetry or download counts, and
    every proxy variable at a dead loopback port so a stray request to another host fails here)."""
    with fakehub.FakeHub(repos=tiny_repos) as hub:
        for k, v in hub.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("NO_PROXY", f"{hub.env()['NO_PROXY']},localhost")  # the Docker socket stays direct
        monkeypatch.setenv("no_proxy", f"{hub.env()['NO_PROXY']},localhost")
        yield hub


@pytest.fixture(scope="session")
def hubtools():
    """tests/fakehub.py as a module: FakeHub, the asset builders, build_wheel."""
    return fakehub

