from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from sandbox.base import PolicyViolation, RuntimeUnavailable, SandboxUnavailable
from sandbox.policy import SandboxPolicy, check_env, parse_size


def test_defaults_and_kwargs():
    p = SandboxPolicy()
    kw = p.docker_kwargs(image="img", run_id="r1", role="reproduce", volume="repro-r1-x")
    assert kw["network_mode"] == "none" and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and kw["security_opt"] == ["no-new-privileges"]
    assert kw["mem_limit"] == kw["memswap_limit"] == 6 << 30
    assert kw["pids_limit"] == 512 and kw["nano_cpus"] == int(p.cpus * 1e9)
    assert kw["shm_size"] == 512 << 20 and "size=" in kw["tmpfs"]["/tmp"]
    assert kw["labels"]["repro.run_id"] == "r1" and kw["labels"]["repro.role"] == "reproduce"
    assert kw["volumes"] == {"repro-r1-x": {"bind": "/workspace", "mode": "rw"}}
    assert kw["environment"] == {} and kw["user"] == p.pid1_user
    assert str(p.max_lifetime_s) in " ".join(kw["command"])
    assert kw["dns"] == ["127.0.0.1"]
    assert "runtime" not in kw


def test_frozen_and_validators():
    p = SandboxPolicy()
    with pytest.raises(ValidationError):
        p.mem_limit = "1g"  # type: ignore[misc]
    for bad in ({"user": "0:0"}, {"user": "root"}, {"cap_drop": ("NET_RAW",)}, {"security_opt": ()},
                {"mem_limit": "lots"}, {"workdir": "/"}, {"workdir": "/tmp"}, {"pids_limit": 1}, {"extra": 1}):
        with pytest.raises(ValidationError):
            SandboxPolicy(**bad)


def test_parse_size():
    assert parse_size("512m") == 512 << 20 and parse_size("6g") == 6 << 30 and parse_size("1.5k") == 1536
    assert parse_size(123) == 123
    with pytest.raises(ValueError):
        parse_size("12x")


def test_bad_run_id_and_role():
    p = SandboxPolicy()
    for rid in ("", "a b", "../x", "x" * 100, "-x"):
        with pytest.raises(PolicyViolation):
            p.labels(run_id=rid, role="agent")
    with pytest.raises(PolicyViolation):
        p.labels(run_id="ok", role="root")


def test_runtime_resolution():
    assert SandboxPolicy().resolve_runtime({"runc"}) is None
    assert SandboxPolicy().resolve_runtime({"runc", "runsc"}) == "runsc"
    with pytest.raises(RuntimeUnavailable) as ei:
        SandboxPolicy(strict_runtime=True).resolve_runtime({"runc"})
    assert isinstance(ei.value, SandboxUnavailable) and isinstance(ei.value, PolicyViolation)
    with pytest.raises(RuntimeUnavailable):
        SandboxPolicy(runtime="kata").resolve_runtime({"runc"})


def _attrs(p: SandboxPolicy) -> dict:
    kw = p.docker_kwargs(image="i", run_id="r", volume="repro-r-1")
    hc = {
        "NetworkMode": "none", "ReadonlyRootfs": True, "CapDrop": ["ALL"], "CapAdd": None, "Privileged": False,
        "SecurityOpt": ["no-new-privileges"], "PidsLimit": kw["pids_limit"], "Memory": kw["mem_limit"],
        "MemorySwap": kw["memswap_limit"], "NanoCpus": kw["nano_cpus"], "Runtime": "runc", "ShmSize": kw["shm_size"],
        "Dns": ["127.0.0.1"], "Tmpfs": kw["tmpfs"], "Binds": ["repro-r-1:/workspace:rw"],
    }
    return {"HostConfig": hc, "Config": {"User": p.pid1_user, "Env": ["PATH=/usr/bin", "HOME=/tmp"]}, "Mounts": []}


def test_check_container_matches_and_detects_drift():
    p = SandboxPolicy()
    good = _attrs(p)
    assert p.check_container(good) == []
    drifts = [
        ("HostConfig", "NetworkMode", "bridge"), ("HostConfig", "ReadonlyRootfs", False),
        ("HostConfig", "CapDrop", []), ("HostConfig", "SecurityOpt", []), ("HostConfig", "PidsLimit", 0),
        ("HostConfig", "Memory", 0), ("HostConfig", "MemorySwap", -1), ("HostConfig", "NanoCpus", 0),
        ("HostConfig", "Runtime", "kata"), ("HostConfig", "Privileged", True), ("HostConfig", "CapAdd", ["SYS_ADMIN"]),
        ("HostConfig", "Binds", ["/var/run/docker.sock:/var/run/docker.sock"]), ("Config", "User", "0"),
        ("Config", "Env", ["OPENAI_API_KEY=sk-x"]), ("HostConfig", "PidMode", "host"),
    ]
    for section, key, value in drifts:
        bad = copy.deepcopy(good)
        bad[section][key] = value
        assert p.check_container(bad), f"drift in {key} not detected"


@pytest.mark.parametrize("env", [{"OPENAI_API_KEY": "x"}, {"HF_TOKEN": "x"}, {"aws_secret_access_key": "x"},
                                 {"DB_PASSWORD": "x"}, {"A": "sk-123"}, {"A": "hf_abc"}, {"A": "ghp_abc"},
                                 {"A": "Bearer abcdefghijkl"}, {"A": "-----BEGIN RSA PRIVATE KEY-----"},
                                 {"1BAD": "x"}, {"A=B": "x"}, {"A": "x\x00y"}])
def test_check_env_refuses(env):
    with pytest.raises(PolicyViolation):
        check_env(env)


def test_check_env_accepts_ordinary():
    env = {"SEED": "1", "TOKENIZERS_PARALLELISM": "false", "KEYBOARD": "us", "PATH_EXTRA": "/x"}
    assert check_env(env) == env and check_env(None) == {}


def test_strict_runtime_env_switch(monkeypatch):
    monkeypatch.setenv("REPRO_SANDBOX_STRICT_RUNTIME", "1")
    with pytest.raises(RuntimeUnavailable):
        SandboxPolicy().resolve_runtime({"runc"})
    assert SandboxPolicy().resolve_runtime({"runc", "runsc"}) == "runsc"
    monkeypatch.setenv("REPRO_SANDBOX_STRICT_RUNTIME", "0")
    assert SandboxPolicy().strict_runtime is False
