from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def docker_image(docker_engine) -> str:
    from sandbox.image import ensure_image

    return ensure_image()


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"itest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def _reap_at_end(run_id):
    yield
    try:
        from sandbox import docker as dk

        dk.reap(run_id)
    except Exception:  # noqa: BLE001 - no engine: nothing was created to reap
        pass
