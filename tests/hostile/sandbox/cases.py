"""The S/R/K/F hostile cases of docs/hostile-cases.md as data: id -> (what is tried, what must hold).

bench/hostile.py checks that every id here produced at least one JSON row (a run, or a
"skipped" row saying why the case cannot run on this host), so a case cannot silently vanish.
"""
from __future__ import annotations

CASES: dict[str, tuple[str, str]] = {
    "S01": ("egress: interfaces, host loopback listener, DNS", "blocked"),
    "S02": ("host reachability: routes, host paths", "blocked"),
    "S03": ("Docker socket and CLI", "blocked"),
    "S04": ("privilege: mount, unshare, modprobe, sysctl, ptrace, caps, setuid", "blocked"),
    "S05": ("read-only root; writable workspace, /tmp, /dev/shm", "blocked"),
    "S06": ("non-root user", "blocked"),
    "S07": ("policy drift over every container (agent, reproduce, setup)", "match"),
    "S08": ("strict runtime without runsc refuses to start", "refused"),
    "S09": ("gVisor identity (only where runsc exists)", "gvisor"),
    "R01": ("fork bomb", "bounded"),
    "R02": ("RAM bomb classified as OOM", "oom"),
    "R03": ("CPU spin killed at timeout", "timeout"),
    "R04": ("SIGTERM-ignoring process escalated to SIGKILL", "timeout"),
    "R05": ("orphans and daemons gone after timeout", "timeout"),
    "R06": ("fast self-SIGTERM is not a timeout", "error"),
    "R07": ("hang without output; stdin closed", "timeout"),
    "R08": ("disk fill", "error"),
    "R09": ("inode exhaustion", "error"),
    "R10": ("/tmp and /dev/shm fill", "error"),
    "R11": ("output flood", "ok"),
    "R12": ("binary, invalid UTF-8, \\r and ANSI output", "ok"),
    "R13": ("GPU hog (only with a GPU)", "timeout"),
    "R14": ("lifetime cap after the host process is SIGKILLed", "stopped"),
    "R15": ("no leftovers after the suite", "clean"),
    "K01": ("canary inside the sandbox", "clean"),
    "K02": ("canary in docker inspect", "clean"),
    "K03": ("canary in logs and artifacts", "clean"),
    "K04": ("canary in the model transcript", "clean"),
    "K05": ("injected print(os.environ) and exfiltration", "clean"),
    "K06": ("LocalSandbox untrusted needs bwrap; env allowlist", "refused"),
    "F01": ("tar traversal and absolute members", "rejected"),
    "F02": ("symlinks leaving the tree", "contained"),
    "F03": ("hardlinks, devices, FIFOs, sockets", "skipped"),
    "F04": ("oversize copy-out leaves nothing", "refused"),
    "F05": ("exact round trip", "equal"),
}


def case_id(row_case: str) -> str:
    """Row names may carry a variant suffix ("R02-literal", "K02-all"): the id is the prefix."""
    return row_case.split("-", 1)[0]
