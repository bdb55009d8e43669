"""`repro sandbox doctor` says what is missing in plain words; `build` and `reap` are wired."""
from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from sandbox import docker as dk
from sandbox.cli import sandbox_app
from sandbox.doctor import diagnose


@pytest.fixture
def no_cached_client(monkeypatch):
    monkeypatch.setattr(dk, "_client", None)


def test_missing_engine_real_socket_path(tmp_path, monkeypatch, no_cached_client):
    sock = tmp_path / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    rep = diagnose()
    assert not rep.ready
    text = "\n".join(rep.lines())
    assert "Docker is not running on this machine" in text and str(sock) in text
    assert "apt-get install docker.io" in text and "NOT ready" in text


def test_socket_without_engine(tmp_path, monkeypatch, no_cached_client):
    sock = tmp_path / "d.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # bound, never listening: connections are refused
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        rep = diagnose()
    finally:
        s.close()
    assert not rep.ready and "exists but no engine answers" in "\n".join(rep.lines())


def test_cli_doctor_exit_code(tmp_path, monkeypatch, no_cached_client):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    res = CliRunner().invoke(sandbox_app, ["doctor"])
    assert res.exit_code == 1 and "Docker is not running" in res.output


class _Engine:
    """Stand-in engine answers, to check the wording of each finding."""

    def __init__(self, runtimes=("runc",), images=(), gpu=False, stale=0):
        self.runtimes, self.images, self.gpu, self.stale = runtimes, set(images), gpu, stale

    def install(self, monkeypatch):
        monkeypatch.setattr(dk, "engine_info", lambda: {"Runtimes": {r: {} for r in self.runtimes},
                                                        "CgroupVersion": "2", "MemoryLimit": True, "PidsLimit": True})
        monkeypatch.setattr(dk, "engine_version", lambda: {"Version": "27.0", "ApiVersion": "1.46"})
        monkeypatch.setattr(dk, "image_exists", lambda tag: tag in self.images)
        monkeypatch.setattr(dk, "gpu_available", lambda: self.gpu)
        stopped = type("C", (), {"status": "exited"})
        monkeypatch.setattr(dk, "list_ours", lambda run_id=None: ([stopped()] * self.stale, []))


def test_runtime_image_and_strict_wording(monkeypatch):
    from sandbox import image

    tag = image.collect_inputs().tag
    _Engine(runtimes=("runc",), images=(), stale=2).install(monkeypatch)
    monkeypatch.delenv("REPRO_SANDBOX_STRICT_RUNTIME", raising=False)
    rep = diagnose()
    text = "\n".join(rep.lines())
    assert not rep.ready
    assert f"the sandbox image is not built yet (no {tag})" in text and "repro sandbox build" in text
    assert "gVisor (runsc) is not installed" in text and "note" in text  # a note, not a failure
    assert "2 stopped sandbox container(s)" in text

    _Engine(runtimes=("runc",), images=(tag,)).install(monkeypatch)
    assert diagnose().ready
    monkeypatch.setenv("REPRO_SANDBOX_STRICT_RUNTIME", "1")
    rep = diagnose()
    assert not rep.ready and any("refuse to start" in t for lvl, t in rep.findings if lvl == "fail")

    _Engine(runtimes=("runc", "runsc"), images=(tag,)).install(monkeypatch)
    rep = diagnose()
    assert rep.ready and any("gVisor (runsc) — every sandbox runs under it" in t for _, t in rep.findings)


def test_gpu_on_host_without_toolkit(monkeypatch):
    from sandbox import doctor, image

    _Engine(images=(image.collect_inputs().tag,)).install(monkeypatch)
    monkeypatch.setattr(doctor, "host_has_nvidia_gpu", lambda: True)
    text = "\n".join(diagnose().lines())
    assert "NVIDIA Container Toolkit" in text


def test_build_dry_runs():
    r = CliRunner().invoke(sandbox_app, ["build", "--offline", "--dry-run"])
    assert r.exit_code == 0 and r.output.startswith("repro-sandbox:")
    r = CliRunner().invoke(sandbox_app, ["build", "--dockerfile", "--dry-run"])
    assert r.exit_code == 0 and "--build-arg TORCH_VERSION=" in r.output
