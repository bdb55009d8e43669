from __future__ import annotations

import uuid

import pytest


def _engine_ok() -> str | None:
    try:
        from sandbox import docker as dk

        dk.client()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means: skip docker tests
        return f"no Docker engine: {e}"


@pytest.fixture(scope="session")
def docker_image() -> str:
    reason = _engine_ok()
    if reason:
        pytest.skip(reason)
    from sandbox.image import ensure_image

    return ensure_image()


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"itest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def _reap_at_end(run_id):
    yield
    if _engine_ok() is None:
        from sandbox import docker as dk

        dk.reap(run_id)
