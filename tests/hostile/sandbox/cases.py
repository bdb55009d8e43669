"""The S/R/K/F hostile cases of docs/hostile-cases.md as data: id -> (what is tried, what must hold).

bench/hostile.py checks that every id here produced at least one JSON row (a run, or a
"skipped" row saying why the case cannot run on this host), so a case cannot silently vanish.

``SANITY`` names the rows (by their full row name, variant suffix included) in which nothing
hostile is tried: they check that ordinary work still works, that a configuration fails closed
or is what it claims, or audit afterwards what the suite's containers, logs and artifacts show.
The figure counts hostile rows only; sanity rows are reported on a line of their own (and a
failing one still fails the run). A row name not listed here is a hostile run.
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


SANITY: dict[str, str] = {
    "R02-after": "a plain `echo alive` after the OOM: the sandbox still works",
    "F05": "benign files copied in and out: a correctness check, no attack",
    "S07": "audit: every container's HostConfig against the policy, nothing is attempted",
    "S08": "configuration: strict runtime without runsc refuses to start; nothing runs",
    "S09": "identity check: uname/dmesg of the gVisor runtime",
    "R15": "audit: no container or volume left after the suite",
    "K02": "audit: docker inspect of a container holds no canary",
    "K02-all": "audit: docker inspect of every container the suite made holds no canary",
    "K03": "audit: logs, artifacts and result rows the suite wrote hold no canary",
    "K06": "configuration: LocalSandbox refuses untrusted code without bwrap; nothing runs",
}


def is_sanity(row: dict) -> bool:
    """A row that tries nothing hostile (see ``SANITY``): reported apart from the figure."""
    return row.get("case") in SANITY


def case_id(row_case: str) -> str:
    """Row names may carry a variant suffix ("R02-literal", "K02-all"): the id is the prefix."""
    return row_case.split("-", 1)[0]
