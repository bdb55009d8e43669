"""F: file copy in/out — no traversal, bounded, exact round-trip."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from sandbox import archive
from sandbox.base import OutputLimitExceeded, PolicyViolation
from sandbox.policy import SandboxPolicy


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m in members:
            payload = (data or {}).get(m.name)
            if payload is not None:
                m.size = len(payload)
                t.addfile(m, io.BytesIO(payload))
            else:
                t.addfile(m)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("evil", ["../../etc/cron.d/x", "/etc/x", "ok/../../x", "a/../../../x"])
def test_f01_traversal_rejected(evil, rec, tmp_path):
    with rec.row("F01", "archive", "rejected") as row:
        dest = tmp_path / "d" / "dest"
        m = tarfile.TarInfo(evil)
        buf = _tar([tarfile.TarInfo("fine.txt"), m], {"fine.txt": b"ok", evil: b"evil"})
        try:
            archive.safe_extract(buf, dest, max_bytes=1 << 20)
            row["outcome"] = "extracted"
        except PolicyViolation:
            row["outcome"] = "rejected"
        escaped = any(p.name == "x" for p in tmp_path.rglob("*")) or Path("/etc/x").exists()
        row["escaped"] = escaped
        assert row["outcome"] == "rejected" and not escaped and not dest.exists()


def test_f01_link_then_write_through(rec, tmp_path):
    """A symlink member followed by a file 'through' it must not write outside."""
    with rec.row("F01-link", "archive", "contained") as row:
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path / "outside")
        (tmp_path / "outside").mkdir()
        f = tarfile.TarInfo("l/pwned")
        try:
            archive.safe_extract(_tar([link, f], {"l/pwned": b"x"}), tmp_path / "dest", max_bytes=1 << 20)
        except PolicyViolation:
            pass
        escaped = (tmp_path / "outside" / "pwned").exists()
        row["escaped"] = escaped
        row["outcome"] = "escaped" if escaped else "contained"
        assert not escaped


def _backends():
    return [pytest.param("docker", marks=pytest.mark.docker), "local"]


def _sandbox(backend, make, tmp_path, policy=None):
    if backend == "docker":
        return make(policy)
    from sandbox.local import LocalSandbox

    return LocalSandbox(policy, run_id="hostile-f", base_dir=tmp_path)


@pytest.mark.parametrize("backend", _backends())
def test_f02_symlinks_not_dereferenced(backend, request, rec, tmp_path):
    make = request.getfixturevalue("make") if backend == "docker" else None
    sb = _sandbox(backend, make, tmp_path)
    with rec.row("F02", backend, "contained") as row:
        secret = tmp_path / "host-secret.txt"
        secret.write_text("HOST-SECRET")
        r = sb.exec(f"mkdir -p w && ln -s /etc/shadow w/shadow && ln -s {secret} w/host && ln -s ../../../.. w/up && echo f > w/f",
                    timeout=20)
        assert r.ok, r.stderr
        out = tmp_path / "out"
        sb.copy_out("w", out)
        texts = [p.read_text() for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
        links = [p for p in out.rglob("*") if p.is_symlink()]
        escaped = any("HOST-SECRET" in t or "root:" in t for t in texts) or any(
            not os.path.realpath(p).startswith(str(out)) for p in links)
        row["escaped"] = escaped
        row["outcome"] = "escaped" if escaped else "contained"
        assert not escaped and (out / "w" / "f").read_text() == "f\n"
        # and the sandbox can't read the host file through its link either: read_file refuses a
        # symlink outright (local: it resolves outside the workdir; docker: not a regular file)
        with pytest.raises(PolicyViolation):
            sb.read_file("w/host")
    sb.close()


@pytest.mark.parametrize("backend", _backends())
def test_f03_special_files(backend, request, rec, tmp_path):
    make = request.getfixturevalue("make") if backend == "docker" else None
    sb = _sandbox(backend, make, tmp_path)
    with rec.row("F03", backend, "skipped") as row:
        r = sb.exec("mkdir -p s && cd s && echo a > a && ln a hard && mkfifo fifo && "
                    "python3 -c \"import socket;s=socket.socket(socket.AF_UNIX);s.bind('sock')\" && echo ok", timeout=30)
        assert r.ok, r.stderr
        t0 = time.monotonic()
        out = tmp_path / "out"
        sb.copy_out("s", out)
        took = time.monotonic() - t0
        names = sorted(p.name for p in (out / "s").iterdir())
        specials = [p for p in (out / "s").iterdir() if not (p.is_file() or p.is_dir())]
        row["outcome"] = "skipped" if not specials and took < 10 else f"kept {specials}"
        assert not specials and took < 10 and "a" in names and "fifo" not in names and "sock" not in names, names
    with rec.row("F03-devices", "archive", "skipped") as row:
        members = []
        for name, kind in (("dev", tarfile.CHRTYPE), ("blk", tarfile.BLKTYPE), ("fifo", tarfile.FIFOTYPE)):
            m = tarfile.TarInfo(f"t/{name}")
            m.type, m.devmajor, m.devminor = kind, 1, 3
            members.append(m)
        rep = archive.safe_extract(_tar(members), tmp_path / "dev-out", max_bytes=1 << 20)
        made = list((tmp_path / "dev-out").rglob("*"))
        row["outcome"] = "skipped" if len(rep.skipped) == 3 and all(p.is_dir() for p in made) else "created"
        assert row["outcome"] == "skipped"
    sb.close()


@pytest.mark.parametrize("backend", _backends())
def test_f04_oversize(backend, request, rec, tmp_path):
    make = request.getfixturevalue("make") if backend == "docker" else None
    sb = _sandbox(backend, make, tmp_path, SandboxPolicy(copy_max_files=1000))
    with rec.row("F04-bytes", backend, "refused") as row:
        sb.exec("mkdir -p big && head -c 3000000 /dev/zero > big/f", timeout=30)
        dest = tmp_path / "o1"
        try:
            sb.copy_out("big", dest, max_bytes=1_000_000)
            row["outcome"] = "copied"
        except OutputLimitExceeded:
            row["outcome"] = "refused"
        row["lost"] = dest.exists()
        assert row["outcome"] == "refused" and not dest.exists()
    with rec.row("F04-files", backend, "refused") as row:
        r = sb.exec("mkdir -p many && cd many && i=0; while [ $i -lt 2000 ]; do : > f$i; i=$((i+1)); done", timeout=120)
        assert r.ok
        dest = tmp_path / "o2"
        try:
            sb.copy_out("many", dest)
            row["outcome"] = "copied"
        except OutputLimitExceeded:
            row["outcome"] = "refused"
        row["lost"] = dest.exists()
        assert row["outcome"] == "refused" and not dest.exists()
    sb.close()


@pytest.mark.parametrize("backend", _backends())
def test_f05_roundtrip(backend, request, rec, tmp_path):
    make = request.getfixturevalue("make") if backend == "docker" else None
    sb = _sandbox(backend, make, tmp_path)
    with rec.row("F05", backend, "equal") as row:
        src = tmp_path / "src"
        src.mkdir()
        files = {"zero": b"", "naïve name with spaces.txt": "ü".encode(), "new\nline": b"n"}
        for n, d in files.items():
            (src / n).write_bytes(d)
        big = src / "big.bin"
        with open(big, "wb") as f:
            for _ in range(200):
                f.write(os.urandom(1 << 20))
        want = {n: hashlib.sha256((src / n).read_bytes()).hexdigest() for n in [*files, "big.bin"]}
        sb.copy_in(src, "rt")
        out = tmp_path / "out"
        sb.copy_out("rt", out, max_bytes=300 << 20)
        got = {n: hashlib.sha256((out / "rt" / n).read_bytes()).hexdigest() for n in want}
        row["lost"] = got != want
        row["outcome"] = "equal" if got == want else "differs"
        assert got == want
    sb.close()
