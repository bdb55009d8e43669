"""``repro sandbox doctor``: what engine, runtime, image, GPU and limits are in effect, and
what is missing — each problem in plain words with the command that fixes it.

Every check degrades to a finding; nothing here raises, because the doctor is what a user
runs when things are broken.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["ok", "warn", "fail"]


@dataclass
class Report:
    findings: list[tuple[Level, str]] = field(default_factory=list)

    def add(self, level: Level, text: str) -> None:
        self.findings.append((level, text))

    @property
    def ready(self) -> bool:
        return not any(level == "fail" for level, _ in self.findings)

    def lines(self) -> list[str]:
        mark = {"ok": "  ok  ", "warn": "  note", "fail": "  FAIL"}
        out = [f"{mark[level]}  {text}" for level, text in self.findings]
        out.append("sandbox: ready" if self.ready else "sandbox: NOT ready (see FAIL above)")
        return out


def host_has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def diagnose() -> Report:
    rep = Report()
    try:
        from sandbox import docker as dk
    except ImportError as e:
        rep.add("fail", f"the Docker SDK for Python is not installed ({e}): pip install 'docker>=7'")
        return rep
    from sandbox import image
    from sandbox.base import SandboxUnavailable
    from sandbox.policy import STRICT_RUNTIME_ENV, SandboxPolicy

    try:
        info, ver = dk.engine_info(), dk.engine_version()
    except SandboxUnavailable as e:
        rep.add("fail", str(e))
        return rep
    except Exception as e:  # noqa: BLE001 - an unexpected engine answer is still a finding
        rep.add("fail", dk.explain_engine_error(dk.docker_host(), e))
        return rep
    rep.add("ok", f"engine: Docker {ver.get('Version')} (API {ver.get('ApiVersion')}) on {dk.docker_host()}")

    policy = SandboxPolicy()
    rts = sorted((info.get("Runtimes") or {}).keys())
    if "runsc" in rts:
        rep.add("ok", f"runtime: gVisor (runsc) — every sandbox runs under it; runtimes: {', '.join(rts)}")
    elif policy.strict_runtime:
        rep.add("fail", f"strict runtime is on ({STRICT_RUNTIME_ENV}=1) but this Docker engine has no gVisor "
                        "runtime (runsc): every sandbox will refuse to start. Install gVisor, register it in "
                        "/etc/docker/daemon.json (runsc install) and restart Docker, or unset "
                        f"{STRICT_RUNTIME_ENV}.")
    else:
        rep.add("warn", "gVisor (runsc) is not installed: sandboxes run under runc, with the kernel shared with "
                        "the host (still no network, no capabilities, read-only root). For a second wall install "
                        f"gVisor; set {STRICT_RUNTIME_ENV}=1 to refuse to run without it.")

    if info.get("MemoryLimit") is False:
        rep.add("fail", "this kernel does not enforce container memory limits: an out-of-memory program could "
                        "take the host down. Enable the memory cgroup (cgroup_enable=memory on the kernel command line).")
    if info.get("PidsLimit") is False:
        rep.add("fail", "this kernel does not enforce process-count limits: a fork bomb would not be bounded. "
                        "Enable the pids cgroup.")
    rep.add("ok", f"cgroups v{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver')})")

    container_gpu = dk.gpu_available()
    if container_gpu:
        rep.add("ok", "GPU: containers can use the NVIDIA GPU (runs record it in the repro.gpu label)")
    elif host_has_nvidia_gpu():
        rep.add("warn", "this machine has an NVIDIA GPU but Docker cannot hand it to containers: install the "
                        "NVIDIA Container Toolkit and run `nvidia-ctk runtime configure --runtime=docker`, then "
                        "restart Docker. Until then sandboxes run on CPU.")
    else:
        rep.add("ok", "GPU: none on this machine (sandboxes run on CPU)")

    try:
        tag = image.collect_inputs().tag
        if dk.image_exists(tag):
            rep.add("ok", f"image: {tag} (also {image.LATEST})")
        elif dk.image_exists(image.LATEST):
            rep.add("warn", f"image: {image.LATEST} is present but older than this install ({tag} is not built); "
                            "run `repro sandbox build` to refresh it")
        else:
            how = "`repro sandbox build` (offline, about a minute)"
            if not shutil.which("busybox"):
                how += " after `apt-get install -y busybox-static`"
            rep.add("fail", f"the sandbox image is not built yet (no {tag}): run {how}, or "
                            "`repro sandbox build --dockerfile` if this Docker can pull from a registry")
    except Exception as e:  # noqa: BLE001 - a broken venv is a finding too
        rep.add("fail", f"cannot work out which sandbox image this install needs: {e}")

    try:
        cs, vs = dk.list_ours()
        stale = [c for c in cs if c.status != "running"]
        if stale:
            rep.add("warn", f"{len(stale)} stopped sandbox container(s) are left over from crashed runs: the "
                            "next run removes them, or run `repro sandbox reap` now")
        rep.add("ok", f"sandboxes now: {len(cs) - len(stale)} running container(s), {len(vs)} workspace volume(s)")
    except Exception as e:  # noqa: BLE001
        rep.add("warn", f"could not list sandbox containers: {e}")

    try:
        from sandbox.broker import Broker, default_root

        b = Broker.open(os.environ.get("REPRO_ASSETS", "auto"))  # type: ignore[arg-type]
        records = len(list((b.root / "records").glob("*.json")))
        rep.add("ok", f"assets: {b.mode} ({b.mode_reason}); cache {default_root()} ({records} asset records), "
                      f"mounted read-only at /opt/repro/broker in every sandbox; `repro run --assets online|offline`")
    except Exception as e:  # noqa: BLE001
        rep.add("warn", f"asset broker: {e}")

    p = policy
    rep.add("ok", f"limits: memory {p.mem_limit} (no swap), {p.pids_limit} processes, {p.cpus:g} CPUs, "
                  f"/tmp {p.tmp_size}, /dev/shm {p.shm_size}, workspace {p.workspace_size}, lifetime "
                  f"{p.max_lifetime_s}s, output {p.output_cap_bytes} B per stream; network none, read-only root, "
                  f"all capabilities dropped, user {p.user}")
    return rep
