"""``SandboxPolicy``: the single place where sandbox hardening lives.

Every container the project creates (the agent's sandbox, the fresh reproduction
container, setup containers) takes its settings from one frozen ``SandboxPolicy``;
``docker_kwargs`` turns it into container-create kwargs and ``check_host_config``
compares what Docker actually applied (``docker inspect``'s ``HostConfig``) with it, so
policy drift is caught both at create time and by the hostile suite (S07).

This module is pure (no docker import) so it can be unit-tested anywhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.base import PolicyViolation, RuntimeUnavailable

Role = Literal["agent", "reproduce", "setup"]
ROLES: tuple[str, ...] = ("agent", "reproduce", "setup")
IMAGE_REPO = "repro-sandbox"
#: the image sandboxes use unless told otherwise; built offline by sandbox.image (`repro sandbox build`)
ASSET_MOUNT_POINT = "/opt/repro/broker"  # where sandboxes see the asset broker's cache
DEFAULT_IMAGE = f"{IMAGE_REPO}:latest"

LABEL_RUN_ID = "repro.run_id"
LABEL_ROLE = "repro.role"
LABEL_EXPIRES = "repro.expires_at"
LABEL_POLICY = "repro.policy"
LABEL_GPU = "repro.gpu"
LABEL_KIND = "repro.kind"  # "sandbox" (containers, volumes we own)

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
STRICT_RUNTIME_ENV = "REPRO_SANDBOX_STRICT_RUNTIME"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_size(value: str | int) -> int:
    """``"6g"`` -> 6 GiB in bytes (binary units, as Docker reads them)."""
    if isinstance(value, int):
        return value
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 512m, 6g)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def check_run_id(run_id: str) -> str:
    """Run ids end up in container/volume names and labels: keep them boring."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise PolicyViolation(f"run_id must match {_RUN_ID_RE.pattern}: {run_id!r}")
    return run_id


# --- secrets -----------------------------------------------------------------------------
_SECRET_NAME_RE = re.compile(
    r"(^|_)(KEY|KEYS|APIKEY|TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|PASS|PWD_HASH|PASSPHRASE|CREDENTIAL|"
    r"CREDENTIALS|CREDS|AUTH|AUTHORIZATION|COOKIE|SESSION|NETRC|PRIVATE|PAT)(_|$)",
    re.IGNORECASE,
)
_SECRET_VALUE_PREFIXES = ("sk-", "hf_", "ghp_", "gho_", "ghs_", "github_pat_", "xoxb-", "xoxp-", "AKIA", "ASIA", "glpat-")
_SECRET_VALUE_RE = re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|Bearer\s+\S{8,}|Authorization:)", re.IGNORECASE)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    """Validate an exec environment: refuse secret-looking names or values.

    Returns a plain copy. Never merges the host environment.
    """
    if not env:
        return {}
    out: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
            raise PolicyViolation(f"invalid environment variable name: {name!r}")
        if not isinstance(value, str):
            raise PolicyViolation(f"environment value for {name} must be a string")
        if "\x00" in value:
            raise PolicyViolation(f"environment value for {name} contains NUL")
        if _SECRET_NAME_RE.search(name):
            raise PolicyViolation(f"refusing secret-looking environment variable {name!r} in a sandbox")
        v = value.strip()
        if v.startswith(_SECRET_VALUE_PREFIXES) or _SECRET_VALUE_RE.search(v):
            raise PolicyViolation(f"refusing secret-looking value for environment variable {name!r}")
        out[name] = value
    return out


class SandboxPolicy(BaseModel):
    """Hardening and limits for every sandbox container (frozen; one source of truth)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network_mode: Literal["none"] = "none"
    """No network at all: only a loopback interface exists inside."""
    read_only_root: bool = True
    """Root filesystem read-only; only /workspace, /tmp and /dev/shm are writable."""
    cap_drop: tuple[str, ...] = ("ALL",)
    """Linux capabilities dropped (all of them)."""
    security_opt: tuple[str, ...] = ("no-new-privileges",)
    """Docker security options (no-new-privileges: setuid binaries don't elevate)."""
    user: str = "1000:1000"
    """uid:gid every command runs as."""
    pid1_user: str = "65534:65534"
    """uid:gid of PID 1 (the lifetime sleep): a different user, so sandbox code can neither
    signal nor ptrace it, and ``kill -KILL -1`` as ``user`` spares it."""
    pids_limit: int = Field(512, ge=16)
    """Max processes/threads in the container (fork-bomb bound)."""
    mem_limit: str = "6g"
    """Memory limit; swap is the same value (i.e. no swap)."""
    cpus: float = Field(default_factory=lambda: float(os.cpu_count() or 1), gt=0)
    """CPU quota in cores (default: all host cores)."""
    tmp_size: str = "1g"
    """Size cap of the /tmp tmpfs."""
    tmp_inodes: int = Field(262144, ge=1024)
    """Inode cap of the /tmp tmpfs."""
    shm_size: str = "512m"
    """/dev/shm size (PyTorch data loaders use it)."""
    workspace_size: str = "4g"
    """Size cap of the /workspace volume (tmpfs-backed: it also counts against memory)."""
    workspace_inodes: int = Field(1_000_000, ge=1024)
    """Inode cap of the /workspace volume (bounds 10^7-empty-files attacks)."""
    workdir: str = "/workspace"
    """Where the workspace volume is mounted; relative sandbox paths resolve here."""
    max_lifetime_s: int = Field(6 * 3600, ge=10)
    """Container lifetime: PID 1 is a bounded sleep, so no container outlives a crashed host."""
    runtime: str = "auto"
    """OCI runtime: "auto" = runsc (gVisor) when the engine has it, else the default; or a name."""
    strict_runtime: bool = Field(default_factory=lambda: _env_flag(STRICT_RUNTIME_ENV))
    """Refuse to start unless runsc (gVisor) is available (no silent fallback to runc).
    Defaults to the ``REPRO_SANDBOX_STRICT_RUNTIME`` environment switch (1/true/yes/on), so a
    user can demand gVisor for every container without touching any config file."""
    output_cap_bytes: int = Field(8192, ge=256)
    """Per stream (stdout, stderr): bytes kept for the caller, half head and half tail."""
    log_cap_bytes: int = Field(64 << 20, ge=4096)
    """Per exec: bytes of full output written to the host log file (when a log_dir is set)."""
    kill_grace_s: float = Field(5.0, ge=0)
    """After a timeout: how long to wait for the killed process tree to exit."""
    nofile: int = Field(4096, ge=64)
    """RLIMIT_NOFILE inside the sandbox."""
    copy_max_files: int = Field(100_000, ge=1)
    """copy_out refuses trees with more entries than this."""
    asset_mount: str | None = None
    """Host directory of the asset broker's cache, bind-mounted read-only at ASSET_MOUNT_POINT
    (the only host path a sandbox ever sees); None: no mount."""

    @field_validator("asset_mount")
    @classmethod
    def _asset_mount(cls, v: str | None) -> str | None:
        if v is None:
            return v
        p = os.path.realpath(v)
        banned = ("/proc", "/sys", "/dev", "/run", "/var/run", "/etc", "/boot", "/var/lib/docker")
        if not os.path.isabs(v) or p == "/" or any(p == b or p.startswith(b + "/") for b in banned) \
                or "docker.sock" in p or not os.path.isdir(p):
            raise ValueError(f"asset_mount must be an existing directory outside system paths, got {v!r}")
        return p

    @field_validator("mem_limit", "tmp_size", "shm_size", "workspace_size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    @field_validator("cap_drop")
    @classmethod
    def _caps(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if "ALL" not in v:
            raise ValueError("cap_drop must contain ALL")
        return v

    @field_validator("security_opt")
    @classmethod
    def _secopt(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not any(o.startswith("no-new-privileges") for o in v):
            raise ValueError("security_opt must contain no-new-privileges")
        return v

    @field_validator("user", "pid1_user")
    @classmethod
    def _user(cls, v: str) -> str:
        uid, _, gid = v.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()) or int(uid) == 0 or (gid and int(gid) == 0):
            raise ValueError("user must be a numeric non-root uid:gid")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/") or v.rstrip("/") in ("", "/tmp", "/dev/shm"):
            raise ValueError("workdir must be an absolute path other than /, /tmp, /dev/shm")
        return v.rstrip("/")

    # --- derived values -------------------------------------------------------------------
    @property
    def mem_bytes(self) -> int:
        return parse_size(self.mem_limit)

    @property
    def nano_cpus(self) -> int:
        return int(self.cpus * 1e9)

    @property
    def thread_env(self) -> dict[str, str]:
        """Thread counts for numeric libraries, from the CPU quota: torch and BLAS size their pools
        by the host's cores, which a quota does not hide; more threads than the quota only
        makes them wait on one another (two parallel runs on two cores both slow down)."""
        n = str(max(1, int(self.cpus)))
        return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}

    @property
    def uid(self) -> int:
        return int(self.user.split(":")[0])

    @property
    def gid(self) -> int:
        u, _, g = self.user.partition(":")
        return int(g or u)

    def digest(self) -> str:
        """Short hash of the policy (stored as a container label)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]

    def pid1_command(self) -> list[str]:
        """PID 1: a bounded sleep loop. A shell as PID 1 reaps orphans while it waits
        (zombies would otherwise eat the pids limit), is immune to ``kill -KILL -1``
        from inside, and exits (stopping the container) once ``max_lifetime_s`` is over."""
        n = int(self.max_lifetime_s)
        script = (
            f"end=$(( $(date +%s) + {n} )); "
            'while now=$(date +%s) && [ "$now" -lt "$end" ]; do '
            'left=$(( end - now )); [ "$left" -gt 30 ] && left=30; sleep "$left"; done'
        )
        return ["/bin/sh", "-c", script]

    def resolve_runtime(self, available: set[str] | list[str]) -> str | None:
        """Which OCI runtime to ask for, given the engine's runtimes. Fails closed in strict mode."""
        available = set(available)
        if self.runtime == "auto":
            if "runsc" in available:
                return "runsc"
            if self.strict_runtime:
                raise RuntimeUnavailable(
                    "strict_runtime: the Docker engine has no 'runsc' (gVisor) runtime; refusing to fall back to runc"
                )
            return None
        if self.runtime not in available:
            raise RuntimeUnavailable(f"runtime {self.runtime!r} is not configured in the Docker engine")
        if self.strict_runtime and self.runtime != "runsc":
            raise RuntimeUnavailable("strict_runtime requires runtime runsc")
        return self.runtime

    def labels(self, *, run_id: str, role: str, gpu: bool = False) -> dict[str, str]:
        check_run_id(run_id)
        if role not in ROLES:
            raise PolicyViolation(f"role must be one of {ROLES}: {role!r}")
        return {
            LABEL_RUN_ID: run_id,
            LABEL_ROLE: role,
            LABEL_KIND: "sandbox",
            LABEL_EXPIRES: str(int(time.time()) + int(self.max_lifetime_s) + 60),
            LABEL_POLICY: self.digest(),
            LABEL_GPU: "1" if gpu else "0",
        }

    def volume_driver_opts(self) -> dict[str, str]:
        """tmpfs-backed local volume for the workspace: size and inode capped, owned by the user."""
        return {
            "type": "tmpfs",
            "device": "tmpfs",
            "o": f"size={parse_size(self.workspace_size)},nr_inodes={self.workspace_inodes},"
            f"uid={self.uid},gid={self.gid},mode=0755,nosuid,nodev",
        }

    def docker_kwargs(
        self,
        *,
        image: str,
        run_id: str,
        role: str = "agent",
        volume: str | None = None,
        runtime: str | None = None,
        gpu: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """kwargs for ``docker.client.containers.create`` (high-level SDK)."""
        kw: dict[str, Any] = dict(
            image=image,
            command=self.pid1_command(),
            entrypoint=[],
            user=self.pid1_user,
            working_dir=self.workdir,
            labels=self.labels(run_id=run_id, role=role, gpu=gpu),
            network_mode="none",
            network_disabled=True,
            read_only=self.read_only_root,
            cap_drop=list(self.cap_drop),
            security_opt=list(self.security_opt),
            privileged=False,
            pids_limit=self.pids_limit,
            mem_limit=self.mem_bytes,
            memswap_limit=self.mem_bytes,
            mem_swappiness=0,
            nano_cpus=self.nano_cpus,
            shm_size=parse_size(self.shm_size),
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={parse_size(self.tmp_size)},nr_inodes={self.tmp_inodes},mode=1777"},
            ulimits=[
                {"Name": "nofile", "Soft": self.nofile, "Hard": self.nofile},
                {"Name": "core", "Soft": 0, "Hard": 0},
            ],
            environment={},  # image ENV only; the host environment is never passed
            stdin_open=False,
            tty=False,
            detach=True,
            init=False,
            auto_remove=False,
            hostname="sandbox",
            dns=["127.0.0.1"],  # no resolver info from the host; lookups die on the own loopback
        )
        if volume:
            kw["volumes"] = {volume: {"bind": self.workdir, "mode": "rw"}}
        if self.asset_mount:
            kw.setdefault("volumes", {})[self.asset_mount] = {"bind": ASSET_MOUNT_POINT, "mode": "ro"}
        if runtime:
            kw["runtime"] = runtime
        if name:
            kw["name"] = name
        return kw

    def expected_host_config(self, runtime: str | None = None) -> dict[str, Any]:
        """The HostConfig fields ``docker inspect`` must show for a container made from this policy."""
        return {
            "NetworkMode": "none",
            "ReadonlyRootfs": self.read_only_root,
            "CapDrop": sorted(self.cap_drop),
            "CapAdd": None,
            "Privileged": False,
            "SecurityOpt": sorted(self.security_opt),
            "PidsLimit": self.pids_limit,
            "Memory": self.mem_bytes,
            "MemorySwap": self.mem_bytes,
            "NanoCpus": self.nano_cpus,
            "Runtime": runtime or "runc",
            "ShmSize": parse_size(self.shm_size),
            "Dns": ["127.0.0.1"],
        }

    def check_container(self, attrs: dict[str, Any], runtime: str | None = None) -> list[str]:
        """Compare a container's ``docker inspect`` dict to this policy; return the mismatches."""
        hc = attrs.get("HostConfig") or {}
        cfg = attrs.get("Config") or {}
        problems: list[str] = []
        for key, want in self.expected_host_config(runtime).items():
            got = hc.get(key)
            if key in ("CapDrop", "SecurityOpt"):
                got = sorted(got or [])
            if key == "CapAdd":
                got = got or None
            if key == "Runtime" and want == "runc" and got in ("runc", "io.containerd.runc.v2", None, ""):
                continue
            if got != want:
                problems.append(f"HostConfig.{key}: want {want!r}, got {got!r}")
        if cfg.get("User") != self.pid1_user:
            problems.append(f"Config.User: want {self.pid1_user!r}, got {cfg.get('User')!r}")
        if (cfg.get("Env") or []) != [] and any(not _image_env_ok(e) for e in cfg.get("Env") or []):
            problems.append("Config.Env: unexpected variables " + repr([e.split("=", 1)[0] for e in cfg["Env"]
                                                                        if not _image_env_ok(e)]))
        tmpfs = hc.get("Tmpfs") or {}
        if "/tmp" not in tmpfs or "size=" not in tmpfs.get("/tmp", ""):
            problems.append(f"HostConfig.Tmpfs: /tmp must be a size-capped tmpfs, got {tmpfs!r}")
        assets_bind = f"{self.asset_mount}:{ASSET_MOUNT_POINT}:ro" if self.asset_mount else None
        for b in hc.get("Binds") or []:
            source = b.split(":", 1)[0]
            if b == assets_bind:
                continue
            if source.startswith("/") or not source.startswith("repro-"):
                problems.append(f"HostConfig.Binds: only the sandbox's own workspace volume may be mounted, got {b!r}")
        for m in attrs.get("Mounts") or []:
            if m.get("Type") == "bind" and self.asset_mount and m.get("Destination") == ASSET_MOUNT_POINT:
                if m.get("Source") != self.asset_mount or m.get("RW") is not False:
                    problems.append(f"Mounts: the asset cache must be {self.asset_mount} read-only, got "
                                    f"{m.get('Source')} rw={m.get('RW')}")
                continue
            if m.get("Type") == "bind" and m.get("Destination") not in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
                problems.append(f"Mounts: unexpected bind mount {m.get('Source')} -> {m.get('Destination')}")
            if "docker.sock" in str(m.get("Source", "")):
                problems.append("Mounts: the Docker socket is mounted")
        if hc.get("Devices"):
            problems.append(f"HostConfig.Devices: want none, got {hc.get('Devices')!r}")
        for k in ("PidMode", "IpcMode", "UTSMode", "UsernsMode"):
            if hc.get(k) == "host":
                problems.append(f"HostConfig.{k}: host namespace shared")
        return problems


def _image_env_ok(entry: str) -> bool:
    """Container env = the image's ENV only; nothing secret-looking may be there."""
    name, _, value = entry.partition("=")
    try:
        check_env({name: value})
    except PolicyViolation:
        return False
    return True


DEFAULT_POLICY = SandboxPolicy()
