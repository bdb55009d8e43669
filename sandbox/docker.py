"""Docker backend: the only module of the project that imports ``docker``.

``DockerSandbox`` runs every command in one long-lived hardened container (settings from
``SandboxPolicy`` only) whose PID 1 is a bounded sleep loop, with a per-sandbox size- and
inode-capped tmpfs volume at ``/workspace`` (``put_archive``/``get_archive`` reach volumes,
not ``--tmpfs`` mounts). Exec semantics:

* stdin is closed unless ``stdin`` is given; the host environment is never passed, and
  the ``env`` given is checked for secret-looking names/values (``PolicyViolation``);
* on timeout every process of the sandbox user is SIGKILLed (``kill -KILL -1`` as uid 1000
  from a second exec: PID 1 is immune, everything else dies, daemons and setsid'd orphans
  included), ``timed_out=True`` and ``returncode=124``;
* out-of-memory kills are read from the container cgroup's oom_kill counter (host side when
  readable, otherwise from inside), so an OOM is never reported as a timeout or a crash;
* output keeps a head and a tail per stream; the full output goes to a capped log file when
  ``log_dir`` is set, written as it comes, and to ``on_output`` chunk by chunk (the exec's
  attached socket is demultiplexed as it is read, not at the end).
"""
from __future__ import annotations

import os
import re
import select
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from sandbox import archive
from sandbox.base import (
    ExecResult,
    OutputCallback,
    OutputLimitExceeded,
    PolicyViolation,
    SandboxError,
    SandboxUnavailable,
)
from sandbox.broker import sandbox_env as broker_env
from sandbox.output import OutputCapture
from sandbox.paths import resolve_inside
from sandbox.policy import (
    DEFAULT_IMAGE,
    LABEL_EXPIRES,
    LABEL_KIND,
    LABEL_ROLE,
    LABEL_RUN_ID,
    SandboxPolicy,
    check_env,
    check_run_id,
)

TIMEOUT_RC = 124
_client: docker.DockerClient | None = None
_client_lock = threading.Lock()
_OOM_RE = re.compile(rb"^oom_kill\s+(\d+)", re.MULTILINE)


# --- engine -------------------------------------------------------------------------------
def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def client() -> docker.DockerClient:
    """A cached client; ``SandboxUnavailable`` with a plain-words reason when no engine answers."""
    global _client
    with _client_lock:
        if _client is not None:
            return _client
        try:
            c = docker.from_env(timeout=300)
            # requests would otherwise consult proxy variables and ~/.netrc on every API call:
            # slower, and the user's netrc credentials have no business near the engine
            c.api.trust_env = False
            c.ping()
        except DockerException as e:
            raise SandboxUnavailable(explain_engine_error(docker_host(), e)) from e
        _client = c
        return c


def explain_engine_error(host: str, error: BaseException | str = "") -> str:
    """Why no engine answers, in plain words with the fix (the raw error last, for reports)."""
    detail = f" (detail: {str(error)[:300]})" if str(error) else ""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not os.path.exists(path):
            return (f"Docker is not running on this machine: there is no Docker socket at {path}. Install Docker "
                    "(apt-get install docker.io) and start it (systemctl start docker, or run dockerd), or set "
                    "DOCKER_HOST to an engine that runs. Until then only `--sandbox local` works, and only for "
                    f"trusted code.{detail}")
        if not os.access(path, os.R_OK | os.W_OK):
            return (f"Docker runs, but this user may not use its socket {path}: add the user to the docker group "
                    f"(usermod -aG docker $USER, then log in again) or run as a user who may.{detail}")
        return (f"The Docker socket {path} exists but no engine answers on it: the Docker daemon has stopped or "
                f"hangs; restart it (systemctl restart docker) and look at its log.{detail}")
    return (f"No Docker engine answers at DOCKER_HOST={host}: check that the address is right and that the engine "
            f"there runs and accepts this client.{detail}")


def engine_info() -> dict[str, Any]:
    try:
        return client().info()
    except DockerException as e:
        raise SandboxUnavailable(f"Docker engine error: {e}") from e


def engine_version() -> dict[str, Any]:
    return client().version()


def runtimes() -> set[str]:
    return set((engine_info().get("Runtimes") or {}).keys())


RUNTIMES_TTL_S = 30.0
_runtimes_seen: tuple[Any, float, set[str]] | None = None  # (client, when, runtimes)


def sandbox_runtimes() -> set[str]:
    """``runtimes()`` for creating a sandbox, asked of the engine at most every ``RUNTIMES_TTL_S``
    per client: an ``/info`` round trip is a few ms of every cold start, and an engine's runtimes
    change only when it is reconfigured (seen within the TTL; strict mode still fails closed, the
    engine refusing an unknown runtime at create)."""
    global _runtimes_seen
    c = client()
    seen = _runtimes_seen
    if seen is not None and seen[0] is c and time.monotonic() - seen[1] < RUNTIMES_TTL_S:
        return set(seen[2])
    rts = runtimes()
    _runtimes_seen = (c, time.monotonic(), rts)
    return set(rts)


def gpu_available() -> bool:
    """True when containers can get NVIDIA GPUs (nvidia runtime or container toolkit hook)."""
    if "nvidia" in runtimes():
        return True
    return bool(shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-container-cli"))


def image_exists(tag: str) -> bool:
    try:
        client().images.get(tag)
        return True
    except ImageNotFound:
        return False
    except DockerException as e:
        raise SandboxUnavailable(str(e)) from e


def tag_image(src: str, dst: str) -> None:
    repo, _, tag = dst.rpartition(":")
    client().images.get(src).tag(repo, tag)


def import_image_tar(path: Path, tag: str, changes: list[str]) -> None:
    repo, _, t = tag.rpartition(":")
    out = client().api.import_image_from_file(str(path), repository=repo, tag=t, changes=changes)
    text = out if isinstance(out, str) else str(out)
    if "error" in text.lower() and not image_exists(tag):
        raise SandboxError(f"docker import failed: {text[:500]}")
    if not image_exists(tag):
        raise SandboxError(f"docker import did not produce {tag}: {text[:500]}")


def build_image_from_dockerfile(context: Path, tag: str, buildargs: dict[str, str],
                                log: Callable[[str], None] = print) -> None:
    try:
        for chunk in client().api.build(path=str(context), tag=tag, buildargs=buildargs, rm=True,
                                        forcerm=True, decode=True, pull=True):
            if "stream" in chunk:
                log(chunk["stream"].rstrip())
            if "error" in chunk:
                raise SandboxError(f"docker build failed: {chunk['error']}")
    except APIError as e:
        raise SandboxError(f"docker build failed: {e}") from e


def default_image() -> str:
    """The default image, which must exist: a sandbox never builds one (that is `repro sandbox
    build`'s job, and scripts/setup.sh's) — so this module never imports the image builder."""
    if image_exists(DEFAULT_IMAGE):
        return DEFAULT_IMAGE
    raise SandboxUnavailable(f"the sandbox image {DEFAULT_IMAGE} is not built: run `repro sandbox build` (offline, "
                             "a minute or two) or scripts/setup.sh")


# --- reaping ------------------------------------------------------------------------------
_startup_reaped = False


def reap(run_id: str | None = None, *, now: float | None = None, min_age_s: float = 60.0,
         keep_roles: tuple[str, ...] = ()) -> dict[str, int]:
    """Remove our leftovers; returns counts removed.

    With ``run_id`` (on resume): every container and volume of that run. Without (at
    start-up): containers whose lifetime label has expired or that have stopped, containers
    created but never started for more than ``min_age_s``, and workspace volumes that no
    container uses and are older than ``min_age_s``. Ages use the wall clock, not ``now``,
    so a sandbox another process is creating at this moment is never taken.
    """
    c = client()
    now = time.time() if now is None else now
    flt = {"label": [f"{LABEL_RUN_ID}={check_run_id(run_id)}"]} if run_id else {"label": [f"{LABEL_KIND}=sandbox"]}
    removed = {"containers": 0, "volumes": 0}
    kept: set[str] = set()
    for ct in c.containers.list(all=True, filters=flt, ignore_removed=True):
        if run_id and (ct.labels or {}).get(LABEL_ROLE) in keep_roles and ct.status == "running":
            kept.add(ct.name)  # a resumed run re-attaches to it (the agent's workspace and its jobs)
            continue
        if run_id or _stale_container(ct, now, min_age_s):
            try:
                ct.remove(force=True, v=True)
                removed["containers"] += 1
            except NotFound:
                pass
            except APIError:  # removal already in progress elsewhere
                continue
            removed["volumes"] += _remove_volume(c, ct.name)  # the workspace volume shares its name
    for vol in c.volumes.list(filters=flt):
        labels = vol.attrs.get("Labels") or {}
        if vol.name in kept:
            continue
        if run_id or _expired(labels, now) or _orphan_volume(c, vol, min_age_s):
            try:
                vol.remove(force=True)
                removed["volumes"] += 1
            except NotFound:
                pass
            except APIError:  # still in use by a live container
                pass
    return removed


def _remove_volume(c: docker.DockerClient, name: str) -> int:
    try:
        vol = c.volumes.get(name)
        if (vol.attrs.get("Labels") or {}).get(LABEL_KIND) != "sandbox":
            return 0
        vol.remove(force=True)
        return 1
    except (NotFound, APIError):
        return 0


def reap_at_startup() -> dict[str, int] | None:
    """``reap()`` once per process, before the first sandbox; never fails the caller."""
    global _startup_reaped
    with _client_lock:
        if _startup_reaped:
            return None
        _startup_reaped = True
    try:
        return reap()
    except (DockerException, SandboxError):
        return None


def _stale_container(ct: Any, now: float, min_age_s: float) -> bool:
    if _expired(ct.labels or {}, now) or ct.status in ("exited", "dead"):
        return True
    # "created" = between create and start in some process, or that process died there
    return ct.status == "created" and time.time() - _iso_ts(ct.attrs.get("Created")) > min_age_s


def _orphan_volume(c: docker.DockerClient, vol: Any, min_age_s: float) -> bool:
    """A workspace volume no container uses any more (its host process crashed), older than
    ``min_age_s`` (so a sandbox being created right now is left alone)."""
    try:
        if c.containers.list(all=True, filters={"volume": vol.name}, ignore_removed=True):
            return False
        return time.time() - _iso_ts(vol.attrs.get("CreatedAt")) > min_age_s
    except DockerException:
        return False


def _iso_ts(value: Any) -> float:
    """Docker's timestamps (nanosecond ISO 8601) -> epoch seconds; unparseable -> now (= young)."""
    from datetime import datetime

    text = str(value or "").replace("Z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if not m:
        return time.time()
    frac = (m.group(2) or "")[:7]  # datetime takes at most microseconds
    try:
        return datetime.fromisoformat(m.group(1) + frac + m.group(3)).timestamp()
    except ValueError:
        return time.time()


def _expired(labels: dict[str, str], now: float) -> bool:
    try:
        return float(labels.get(LABEL_EXPIRES, "inf")) < now
    except ValueError:
        return True


def list_ours(run_id: str | None = None) -> tuple[list[Any], list[Any]]:
    """(containers, volumes) carrying our labels (for leak checks)."""
    c = client()
    flt = {"label": [f"{LABEL_RUN_ID}={run_id}"]} if run_id else {"label": [f"{LABEL_KIND}=sandbox"]}
    return c.containers.list(all=True, filters=flt, ignore_removed=True), c.volumes.list(filters=flt)


# --- the sandbox --------------------------------------------------------------------------
class DockerSandbox:
    """A hardened container implementing ``sandbox.base.Sandbox``."""

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        run_id: str,
        image: str | None = None,
        role: str = "agent",
        gpu: bool = False,
        log_dir: Path | None = None,
        name: str | None = None,
        reuse: bool = False,
    ):
        """``name`` + ``reuse``: attach to this run's running container of that name when there is
        one (the agent's workspace after a crash: its files and jobs live on), else create it."""
        self.policy = policy or SandboxPolicy()
        # what every exec starts from: thread counts for the CPU quota, the broker's offline caches
        self._base_env = {**self.policy.thread_env, **(broker_env() if self.policy.asset_mount else {})}
        self.run_id = check_run_id(run_id)
        self.role = role
        self.workdir = self.policy.workdir
        self.log_dir = Path(log_dir) if log_dir else None
        self._lock = threading.RLock()
        self._closed = False
        self._exec_n = 0
        self._oom_seen = 0
        self.container = None
        self.volume = None
        c = client()
        reap_at_startup()  # leftovers of crashed processes, once per process
        self._api = c.api
        self.runtime = self.policy.resolve_runtime(sandbox_runtimes())  # RuntimeUnavailable in strict mode
        self.gpu = bool(gpu and gpu_available())
        self.gpu_requested = gpu
        self.image = image or default_image()
        suffix = uuid.uuid4().hex[:8]
        self.name = (name or f"repro-{self.run_id}-{role}-{suffix}")[:128]
        self.attached = False
        if reuse and self._attach(c):
            return
        labels = self.policy.labels(run_id=self.run_id, role=role, gpu=self.gpu)
        try:
            self.volume = c.volumes.create(
                name=self.name, driver="local", driver_opts=self.policy.volume_driver_opts(), labels=labels
            )
            kw = self.policy.docker_kwargs(
                image=self.image, run_id=self.run_id, role=role, volume=self.name, runtime=self.runtime,
                gpu=self.gpu, name=self.name,
            )
            kw["labels"] = labels
            kw.pop("detach", None)
            if self.gpu:
                kw["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
            self.container = c.containers.create(**kw)
            # the SDK's create already inspected the new container (its attrs): the engine's own
            # view of it, checked against the policy without a second inspect round trip
            problems = self.policy.check_container(self.container.attrs, self.runtime)
            if problems:
                raise PolicyViolation("container does not match the policy: " + "; ".join(problems))
            self.container.start()
        except ImageNotFound as e:
            self._cleanup()
            raise SandboxUnavailable(f"image {self.image!r} not found: run `repro sandbox build`") from e
        except (DockerException, SandboxError):
            self._cleanup()
            raise
        except BaseException:
            self._cleanup()
            raise
        self.id = self.container.id
        self._host_oom_file = self._find_host_oom_file()

    def _attach(self, c: docker.DockerClient) -> bool:
        """Take over this run's existing container of our name if it still runs under our policy;
        a stopped or foreign one is removed (with its volume) so a fresh one can take the name."""
        try:
            ct = c.containers.get(self.name)
        except NotFound:
            return False
        labels = ct.labels or {}
        state = self._api.inspect_container(ct.id)
        ours = labels.get(LABEL_RUN_ID) == self.run_id and labels.get(LABEL_KIND) == "sandbox"
        if ours and state["State"].get("Running") and not self.policy.check_container(state, self.runtime) \
                and not _expired(labels, time.time()):
            self.container = ct
            self.volume = c.volumes.get(self.name)
            self.id = ct.id
            self.image = state["Config"].get("Image") or self.image
            self.attached = True
            self._host_oom_file = self._find_host_oom_file()
            self._oom_seen = self._oom_count() or 0
            return True
        if not ours:
            raise PolicyViolation(f"a container named {self.name} exists but is not this run's sandbox")
        self.container = ct
        try:
            self.volume = c.volumes.get(self.name)
        except NotFound:
            self.volume = None
        self._cleanup()
        self.container = self.volume = None
        return False

    # --- helpers ----------------------------------------------------------------------------
    def _find_host_oom_file(self) -> Path | None:
        if not docker_host().startswith("unix://") or self.runtime == "runsc":
            return None
        cid = self.container.id
        for p in (
            f"/sys/fs/cgroup/memory/docker/{cid}/memory.oom_control",
            f"/sys/fs/cgroup/memory/system.slice/docker-{cid}.scope/memory.oom_control",
            f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.events",
            f"/sys/fs/cgroup/docker/{cid}/memory.events",
        ):
            if os.access(p, os.R_OK):
                return Path(p)
        return None

    def _oom_count(self) -> int | None:
        if self._host_oom_file is not None:
            try:
                m = _OOM_RE.search(self._host_oom_file.read_bytes())
                if m:
                    return int(m.group(1))
            except OSError:
                pass
        try:
            r = self._api.exec_create(
                self.container.id,
                ["/bin/sh", "-c", "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"],
                user=self.policy.user, stdin=False, tty=False,
            )
            out = self._api.exec_start(r["Id"], demux=False) or b""
            m = _OOM_RE.search(out if isinstance(out, bytes) else b"")
            return int(m.group(1)) if m else None
        except DockerException:
            return None

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxUnavailable("sandbox is closed")

    def _resolve(self, path: str) -> str:
        return resolve_inside(path, self.workdir)

    def _wrap(self, e: Exception) -> SandboxError:
        if isinstance(e, NotFound):
            return SandboxUnavailable(f"sandbox container is gone: {e}")
        if isinstance(e, APIError) and e.response is not None and e.response.status_code == 409:
            return SandboxUnavailable(f"sandbox container is not running: {e.explanation}")
        if isinstance(e, APIError) and "is not running" in str(e):
            return SandboxUnavailable(f"sandbox container is not running: {e}")
        return SandboxUnavailable(f"Docker error: {e}")

    # --- exec -------------------------------------------------------------------------------
    def exec(
        self,
        cmd: list[str] | str,
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        self._check_open()
        if isinstance(cmd, str):
            argv = ["/bin/sh", "-c", cmd]
        else:
            argv = [str(a) for a in cmd]
            if not argv:
                raise PolicyViolation("empty command")
        environment = {**self._base_env, **check_env(env)}  # the caller's values win
        workdir = self._resolve(cwd) if cwd else self.workdir
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        data = stdin.encode() if isinstance(stdin, str) else stdin
        with self._lock:
            self._exec_n += 1
            log_path = self.log_dir / f"{self.name}-exec-{self._exec_n:04d}.log" if self.log_dir else None
            # the exec's socket is read as the output comes: each chunk to the log and to on_output at once
            cap = OutputCapture(self.policy.output_cap_bytes, log_path, self.policy.log_cap_bytes, on_output)
            t0 = time.monotonic()
            try:
                ex = self._api.exec_create(
                    self.container.id, argv, stdout=True, stderr=True, stdin=data is not None, tty=False,
                    environment=environment, workdir=workdir, user=self.policy.user,
                )
                exec_id = ex["Id"]
                sock = self._api.exec_start(exec_id, socket=True, tty=False)
            except DockerException as e:
                cap.close()
                raise self._wrap(e) from e
            try:
                timed_out = self._pump(sock, exec_id, data, cap, t0 + timeout)
            finally:
                try:
                    sock.close()
                except OSError:
                    pass
                cap.close()
            info = self._exec_inspect_final(exec_id, wait=self.policy.kill_grace_s if timed_out else 2.0)
            duration = time.monotonic() - t0
            rc = info.get("ExitCode")
            raw_rc = rc
            oom = False
            if timed_out or rc != 0:
                n = self._oom_count()
                if n is not None and n > self._oom_seen:
                    oom = True
                    self._oom_seen = n
            if timed_out:
                rc = TIMEOUT_RC
            elif rc is None:
                rc = -1
            return ExecResult(
                returncode=int(rc),
                stdout=cap.stdout.text(),
                stderr=cap.stderr.text(),
                truncated=cap.truncated,
                timed_out=timed_out,
                oom_killed=oom and not timed_out,
                duration_s=duration,
                log_path=cap.log_path,
                extra={"raw_returncode": raw_rc, "gpu": self.gpu, "runtime": self.runtime or "runc",
                       "stdout_bytes": cap.stdout.total, "stderr_bytes": cap.stderr.total,
                       "oom_during_timeout": oom and timed_out, **cap.extra},
            )

    def _pump(self, sock: Any, exec_id: str, data: bytes | None, cap: OutputCapture, deadline: float) -> bool:
        """Read the multiplexed stream until EOF; returns True when the deadline passed."""
        raw: socket.socket = getattr(sock, "_sock", sock)
        raw.setblocking(False)
        if data is not None:
            threading.Thread(target=_feed_stdin, args=(raw, data), daemon=True).start()
        buf = bytearray()
        timed_out = False
        kill_deadline: float | None = None
        idle_since = time.monotonic()
        while True:
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                self.kill_all()
                kill_deadline = time.monotonic() + max(self.policy.kill_grace_s, 0.5)
            if kill_deadline is not None and now >= kill_deadline:
                break
            wait = (kill_deadline or deadline) - now
            try:
                r, _, _ = select.select([raw], [], [], max(0.0, min(wait, 0.25)))
            except (OSError, ValueError):
                break
            if not r:
                # Idle: the main process may have exited while a background child still holds
                # the output pipe open; don't wait for it.
                if time.monotonic() - idle_since > 0.5:
                    idle_since = time.monotonic()
                    try:
                        if not self._api.exec_inspect(exec_id).get("Running", True):
                            self._drain(raw, buf, cap, 0.1)
                            break
                    except DockerException:
                        break
                continue
            try:
                chunk = raw.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError:
                break
            if not chunk:
                break
            idle_since = time.monotonic()
            buf += chunk
            _demux(buf, cap)
        return timed_out

    def _drain(self, raw: socket.socket, buf: bytearray, cap: OutputCapture, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([raw], [], [], max(0.0, end - time.monotonic()))
            if not r:
                return
            try:
                chunk = raw.recv(1 << 16)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            buf += chunk
            _demux(buf, cap)

    def _exec_inspect_final(self, exec_id: str, wait: float) -> dict:
        end = time.monotonic() + wait
        info: dict = {}
        while True:
            try:
                info = self._api.exec_inspect(exec_id)
            except DockerException as e:
                raise self._wrap(e) from e
            if not info.get("Running") or time.monotonic() >= end:
                return info
            time.sleep(0.02)

    def kill_all(self) -> bool:
        """SIGKILL every process of the sandbox user except PID 1 (the lifetime sleep).

        A fork bomb can hold the pids limit full, and then the killer exec itself cannot
        start; so keep trying until ``docker top`` (host side, needs no fork inside) shows no
        process of the sandbox user, for at most ``kill_grace_s``. Returns True when none is left.
        """
        end = time.monotonic() + max(self.policy.kill_grace_s, 1.0)
        while True:
            try:
                ex = self._api.exec_create(self.container.id, ["kill", "-9", "-1"], user=self.policy.user,
                                           stdin=False, tty=False)
                self._api.exec_start(ex["Id"])
            except DockerException:
                pass
            left = self._user_processes()
            if left == 0 or left is None or time.monotonic() >= end:
                return left == 0
            time.sleep(0.05)

    def _user_processes(self) -> int | None:
        """How many processes of the sandbox user run in the container (None: cannot tell)."""
        try:
            top = self._api.top(self.container.id, ps_args="-o pid,uid")
            col = [t.strip().upper() for t in top.get("Titles") or []].index("UID")
            return sum(1 for row in top.get("Processes") or [] if row[col].strip() == str(self.policy.uid))
        except (DockerException, ValueError, IndexError):
            return None

    # --- files ------------------------------------------------------------------------------
    def write_file(self, path: str, data: str | bytes) -> None:
        self._check_open()
        p = self._resolve(path)
        if p == self.workdir:
            raise PolicyViolation("cannot write over the workdir itself")
        rel = p[len(self.workdir) + 1:]
        payload = archive.pack_bytes(rel, data.encode() if isinstance(data, str) else data, mtime=time.time(),
                                     uid=self.policy.uid, gid=self.policy.gid)
        try:
            ok = self._api.put_archive(self.container.id, self.workdir, payload)
        except DockerException as e:
            raise self._wrap(e) from e
        if not ok:
            raise SandboxError(f"writing {p} failed")

    def _get_archive(self, path: str):
        """(tar stream, stat) of a sandbox path; a missing path in a live container is FileNotFoundError."""
        try:
            return self._api.get_archive(self.container.id, self._resolve(path), chunk_size=1 << 16)
        except NotFound as e:
            if self._container_alive():
                raise FileNotFoundError(path) from e
            raise self._wrap(e) from e
        except DockerException as e:
            raise self._wrap(e) from e

    def read_file(self, path: str, max_bytes: int = 1 << 20) -> bytes:
        self._check_open()
        stream, st = self._get_archive(path)
        if st.get("size", 0) > max_bytes:
            _close_stream(stream)
            raise OutputLimitExceeded(f"{path} is {st.get('size')} bytes, more than max_bytes={max_bytes}")
        try:
            return archive.read_single_file(archive.IterStream(stream, max_raw=max_bytes + (1 << 20)), max_bytes)
        finally:
            _close_stream(stream)

    def copy_in(self, src: Path, dest: str | None = None) -> None:
        """A directory's contents are mirrored at ``dest`` (default: the workdir); a file lands
        at ``dest/<name>``. Symlinks leaving ``src`` are refused; special files skipped."""
        self._check_open()
        src = Path(src)
        if not src.exists():
            raise FileNotFoundError(src)
        d = self._resolve(dest or self.workdir)
        rel = d[len(self.workdir) + 1:] if d != self.workdir else ""
        arcname = rel if src.is_dir() else (f"{rel}/{src.name}" if rel else src.name)
        with tempfile.SpooledTemporaryFile(max_size=32 << 20) as tmp:
            archive.pack_path(src, arcname, tmp, uid=self.policy.uid, gid=self.policy.gid)
            tmp.seek(0)
            try:
                ok = self._api.put_archive(self.container.id, self.workdir, tmp)
            except DockerException as e:
                raise self._wrap(e) from e
        if not ok:
            raise SandboxError(f"copy into {d} failed")

    def copy_out(self, src: str, dest: Path, max_bytes: int = 256 << 20) -> None:
        """``src`` (file or tree) lands at ``dest/<basename(src)>``; all or nothing."""
        self._check_open()
        stream, st = self._get_archive(src)
        try:
            if st.get("size", 0) > max_bytes and not (int(st.get("mode", 0)) & (1 << 31)):
                raise OutputLimitExceeded(f"{src} is {st.get('size')} bytes, more than max_bytes={max_bytes}")
            raw_cap = max_bytes + 2048 * self.policy.copy_max_files + (1 << 20)
            archive.safe_extract(archive.IterStream(stream, max_raw=raw_cap), Path(dest), max_bytes=max_bytes,
                                 max_files=self.policy.copy_max_files)
        finally:
            _close_stream(stream)

    def _container_alive(self) -> bool:
        try:
            return self._api.inspect_container(self.container.id)["State"]["Running"]
        except DockerException:
            return False

    # --- lifecycle --------------------------------------------------------------------------
    def inspect(self) -> dict:
        return self._api.inspect_container(self.container.id)

    def _cleanup(self) -> None:
        if self.container is not None:
            for _ in range(3):
                try:
                    self.container.remove(force=True, v=True)
                    break
                except NotFound:
                    break
                except APIError:
                    time.sleep(0.2)
        if self.volume is not None:
            for _ in range(10):
                try:
                    self.volume.remove(force=True)
                    break
                except NotFound:
                    break
                except APIError:
                    time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cleanup()

    def __enter__(self) -> "DockerSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DockerSandbox(name={self.name!r}, image={self.image!r}, runtime={self.runtime or 'runc'})"


def _feed_stdin(raw: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            _, w, _ = select.select([], [raw], [], 5)
            if not w:
                continue
            try:
                n = raw.send(view[: 1 << 16])
            except BlockingIOError:
                continue
            view = view[n:]
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _demux(buf: bytearray, cap: OutputCapture) -> None:
    """Split Docker's multiplexed stream (8-byte header: stream id, 0, 0, 0, big-endian size)."""
    pos, n = 0, len(buf)
    with memoryview(buf) as mv:
        while n - pos >= 8:
            size = int.from_bytes(mv[pos + 4:pos + 8], "big")
            if n - pos < 8 + size:
                break
            cap.feed(2 if mv[pos] == 2 else 1, bytes(mv[pos + 8:pos + 8 + size]))
            pos += 8 + size
    if pos:
        del buf[:pos]


def _close_stream(stream: Iterable[bytes]) -> None:
    close = getattr(stream, "close", None)
    if close:
        try:
            close()
        except Exception:  # noqa: BLE001 - best effort on a generator
            pass


# --- `python -m sandbox.docker ping|wait SECONDS`: setup's engine check -----------------------
def _describe_engine() -> str:
    v = engine_version()
    return f"engine {v.get('Version', '?')} (API {v.get('ApiVersion', '?')}) at {docker_host()}"


def _main(argv: list[str]) -> int:
    """Ask the engine itself (through the SDK, on the socket): a ``docker`` client on PATH says
    nothing about whether an engine runs, and a client of another version may refuse to talk."""
    cmd = argv[0] if argv else "ping"
    deadline = time.monotonic() + (float(argv[1]) if cmd == "wait" and len(argv) > 1 else 0)
    while True:
        global _client
        _client = None
        try:
            print(_describe_engine())
            return 0
        except (SandboxUnavailable, DockerException) as e:
            if time.monotonic() >= deadline:
                print(str(e))
                return 1
        time.sleep(1)


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
