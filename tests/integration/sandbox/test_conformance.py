"""The conformance suite (sandbox/conformance.py) against every backend."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.conformance import CHECKS, Harness
from tests.conftest import declared_skip, need

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    "local",
    # untrusted code on the local backend: only inside bubblewrap (a requirement, see harness)
    "local-bwrap",
    "fake",
]


@pytest.fixture(scope="module", params=BACKENDS)
def harness(request, run_id, tmp_path_factory):
    backend = request.param
    if backend == "local-bwrap":
        need(None if shutil.which("bwrap") else "no bwrap on PATH", "bubblewrap (apt-get install bubblewrap)")
    made = []
    image = request.getfixturevalue("docker_image") if backend == "docker" else None

    def make(policy=None, log_dir: Path | None = None):
        if backend == "docker":
            from sandbox.docker import DockerSandbox

            sb = DockerSandbox(policy, run_id=run_id, image=image, log_dir=log_dir)
        elif backend in ("local", "local-bwrap"):
            from sandbox.local import LocalSandbox

            trust = "untrusted" if backend == "local-bwrap" else "trusted"
            sb = LocalSandbox(policy, run_id=run_id, log_dir=log_dir, trust=trust)
        else:
            from sandbox.fake import FakeSandbox

            sb = FakeSandbox(policy=policy, run_id=run_id)
        made.append(sb)
        return sb

    h = Harness(backend=backend, make=make, shared=make())
    yield h
    for sb in made:
        sb.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_conformance(harness, check):
    reason = check.exceptions.get(harness.backend)
    if reason:
        declared_skip(f"known exception for {harness.backend}: {reason}")
    check.fn(harness)


def test_every_check_declared_once():
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names)) and len(names) >= 15
