"""Python packages: `pip download` on the host into a wheelhouse the sandboxes see read-only;
inside, pip installs from it with no index (PIP_NO_INDEX, PIP_FIND_LINKS), so code and
reproduce.sh install their requirements exactly as a user would, with no network."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from sandbox.broker.hub import AssetRefused
from sandbox.broker.records import AssetRecord, FileEntry, sha256_file
from sandbox.broker.rules import AssetRules
from sandbox.policy import ASSET_MOUNT_POINT

SANDBOX_WHEELS = f"{ASSET_MOUNT_POINT}/wheels"


def check_requirements(reqs: list[str], rules: AssetRules) -> list[Requirement]:
    """Plain requirement strings only: a URL, a path or a pip option would choose its own source."""
    out: list[Requirement] = []
    for text in reqs:
        text = text.strip()
        if not text or text.startswith("-"):
            raise AssetRefused("bad_request", f"{text!r} is not a requirement (pip options are not accepted)")
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise AssetRefused("bad_request", f"{text!r} is not a requirement: {exc}") from exc
        if req.url:
            raise AssetRefused("bad_request", f"{text!r} names its own URL; ask for the package by name and version")
        if (why := rules.blacklist_refusal("package", req.name)) is not None:
            raise AssetRefused("blacklisted", why)
        out.append(req)
    return out


def fetch(reqs: list[str], *, root: Path, rules: AssetRules, used_bytes: int, source: str) -> AssetRecord:
    parsed = check_requirements(reqs, rules)
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        # binary wheels only: building an sdist would run its setup code on the host
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input",
                               "--disable-pip-version-check", "--dest", str(staging), *[str(r) for r in parsed]],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])[:400]
            code = "unreachable" if any(w in tail.lower() for w in ("connection", "resolve", "timed out")) \
                else "not_found"
            raise AssetRefused(code, f"pip could not download {', '.join(map(str, parsed))}: {tail}")
        got = sorted(staging.glob("*.whl"))
        size = sum(p.stat().st_size for p in got)
        if (why := rules.size_refusal("packages", ", ".join(map(str, parsed)), size, used_bytes)) is not None:
            raise AssetRefused("too_large", why)
        files = {}
        for p in got:
            files[p.name] = FileEntry(size=p.stat().st_size, sha256=sha256_file(p))
            p.replace(wheels / p.name)  # whole files by rename: a reader never sees half a wheel
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ident = " ".join(sorted(str(r) for r in parsed))
    return AssetRecord(kind="packages", id=ident, source=source, files=files, sandbox_path=SANDBOX_WHEELS,
                       how=f"python -m pip install {ident}  (from the wheelhouse: PIP_NO_INDEX and PIP_FIND_LINKS are set)")


def pip_source() -> str:
    """The index the host's pip is configured for (what `pip download` will use)."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    urls = [line.split("=", 1)[1].strip().strip("'\"") for line in out.splitlines()
            if line.split("=", 1)[0].endswith(("index-url", "extra-index-url"))]
    return " ".join(urls) or "https://pypi.org/simple"
