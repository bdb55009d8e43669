from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import open_sandbox
from sandbox.base import ExecResult, PolicyViolation, Sandbox, SandboxUnavailable
from sandbox.fake import FakeSandbox

ROOT = Path(__file__).resolve().parents[3]


def test_fake_scripted_and_recorded():
    sb = FakeSandbox([ExecResult(returncode=0, stdout="a"), ExecResult(returncode=1)])
    assert isinstance(sb, Sandbox)
    assert sb.exec("x", timeout=1).stdout == "a"
    assert sb.exec(["y"], timeout=2, env={"A": "1"}).returncode == 1
    assert [c["cmd"] for c in sb.commands] == ["x", ["y"]] and sb.commands[1]["env"] == {"A": "1"}
    with pytest.raises(AssertionError):
        sb.exec("z", timeout=1)
    sb.close()
    sb.close()
    with pytest.raises(SandboxUnavailable):
        sb.exec("x", timeout=1)


def test_fake_dict_and_callable():
    sb = FakeSandbox({"train": ExecResult(returncode=0, stdout="acc=0.9")})
    assert sb.exec("python train.py", timeout=1).stdout == "acc=0.9"
    assert sb.exec("ls", timeout=1).returncode == 0
    sb2 = FakeSandbox(lambda cmd: ExecResult(returncode=len(cmd)))
    assert sb2.exec("abc", timeout=1).returncode == 3


def test_factory():
    with open_sandbox("fake", run_id="u1") as sb:
        assert isinstance(sb, FakeSandbox)
    with open_sandbox("local", run_id="u2") as sb:
        assert sb.exec("echo $HOME", timeout=10).stdout.strip() == sb.workdir
    with pytest.raises(ValueError):
        open_sandbox("podman", run_id="u3")


def test_import_sandbox_does_not_import_docker():
    code = "import sys, sandbox, sandbox.local, sandbox.fake, sandbox.image, sandbox.conformance; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_only_docker_module_imports_docker():
    offenders = []
    for py in (ROOT / "sandbox").rglob("*.py"):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "docker" or n.startswith("docker.") for n in names) and py.name != "docker.py":
                offenders.append(str(py))
    assert not offenders


def test_local_untrusted_refused_without_bwrap(monkeypatch):
    from sandbox import local

    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    with pytest.raises(PolicyViolation):
        local.LocalSandbox(run_id="u4", trust="untrusted")


def test_local_env_is_allowlist(monkeypatch):
    from sandbox.local import LocalSandbox

    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-canary")
    monkeypatch.setenv("SOME_HOST_VAR", "host-only")
    with LocalSandbox(run_id="u5") as sb:
        out = sb.exec("env", timeout=10).stdout
    assert "sk-unit-canary" not in out and "host-only" not in out
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert names <= {"PATH", "LANG", "HOME", "TMPDIR", "MPLCONFIGDIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                     "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
                     "TOKENIZERS_PARALLELISM", "REPRO_SANDBOX_ID", "REPRO_MODELS", "REPRO_DATA", "PWD", "SHLVL", "_"}


def test_local_symlink_escape_refused(tmp_path):
    from sandbox.local import LocalSandbox

    (tmp_path / "secret").write_text("s")
    with LocalSandbox(run_id="u6") as sb:
        Path(sb.workdir, "l").symlink_to(tmp_path / "secret")
        with pytest.raises(PolicyViolation):
            sb.read_file("l")
        with pytest.raises(PolicyViolation):
            sb.write_file("l", "x")
    assert (tmp_path / "secret").read_text() == "s"


def test_host_assets(tmp_path):
    from sandbox.assets import host_assets

    a = host_assets(tmp_path)
    assert (a.model_path / "config.json").is_file() and a.data_path.is_file()
    assert host_assets(tmp_path) == a  # idempotent
    assert a.env() == {"REPRO_MODELS": str(tmp_path / "models"), "REPRO_DATA": str(tmp_path / "data")}
