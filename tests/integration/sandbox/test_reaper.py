"""The reaper: leftovers of a run go on resume; stopped/expired sandboxes go at start-up."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def _names(run_id):
    from sandbox import docker as dk

    cs, vs = dk.list_ours(run_id)
    return {c.name for c in cs}, {v.name for v in vs}


def test_reap_run_removes_containers_and_volumes(docker_image, run_id):
    from sandbox import docker as dk
    from sandbox.docker import DockerSandbox

    rid = f"{run_id}-resume"
    a = DockerSandbox(run_id=rid, image=docker_image)
    b = DockerSandbox(run_id=rid, image=docker_image, role="reproduce")
    assert _names(rid) == ({a.name, b.name}, {a.name, b.name})
    removed = dk.reap(rid)  # what a resume does before anything else
    assert removed == {"containers": 2, "volumes": 2} and _names(rid) == (set(), set())
    a.close()  # closing after the reaper took it is harmless
    b.close()


def test_startup_reap_takes_stopped_keeps_live(docker_image, run_id, monkeypatch):
    from sandbox import docker as dk
    from sandbox.docker import DockerSandbox

    rid = f"{run_id}-startup"
    dead = DockerSandbox(run_id=rid, image=docker_image)
    live = DockerSandbox(run_id=rid, image=docker_image)
    try:
        dead.container.kill()  # as if its lifetime ran out while the host process was gone
        monkeypatch.setattr(dk, "_startup_reaped", False)
        with DockerSandbox(run_id=rid, image=docker_image) as fresh:  # start-up reap runs here
            cs, vs = _names(rid)
            assert dead.name not in cs and dead.name not in vs
            assert {live.name, fresh.name} <= cs and {live.name, fresh.name} <= vs
            assert live.exec("echo alive", timeout=20).stdout == "alive\n"
        assert dk.reap_at_startup() is None  # once per process
    finally:
        dead.close()
        live.close()
