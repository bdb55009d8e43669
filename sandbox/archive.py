"""Safe tar in and out of sandboxes.

Packing (host -> sandbox): regular files, directories and symlinks that stay inside the
tree; device files, FIFOs and sockets are skipped; setuid/setgid bits are dropped; owner is
the sandbox user; mtimes are kept.

Extracting (sandbox -> host), ``safe_extract``:

* member names must be relative, without ``..`` (absolute or traversing names are rejected:
  ``PolicyViolation``);
* only regular files, directories and symlinks whose target stays inside the tree are
  created (symlinks last, so no member is ever written through a link); hardlinks, device
  nodes, FIFOs and sockets are skipped and reported;
* total file bytes and entry count are capped (``OutputLimitExceeded``);
* everything is extracted into a temporary directory next to the destination and moved into
  place only when complete: on any error no partial destination is left behind;
* file and directory mtimes are preserved (the grader relies on them).
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from sandbox.base import OutputLimitExceeded, PolicyViolation

SANDBOX_UID = 1000
SANDBOX_GID = 1000
_CHUNK = 1 << 20


@dataclass
class ExtractReport:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)


class IterStream(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks, with a raw byte cap."""

    def __init__(self, chunks: Iterable[bytes], max_raw: int | None = None):
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self.raw_bytes = 0
        self.max_raw = max_raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
            self.raw_bytes += len(self._buf)
            if self.max_raw is not None and self.raw_bytes > self.max_raw:
                raise OutputLimitExceeded(f"archive stream exceeds {self.max_raw} bytes")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def clean_member_name(name: str) -> str:
    """Normalise a tar member name; refuse absolute and traversing names."""
    if not name or "\x00" in name:
        raise PolicyViolation(f"invalid archive member name {name!r}")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise PolicyViolation(f"absolute path in archive: {name!r}")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PolicyViolation(f"path traversal in archive: {name!r}")
    return "/".join(parts)


def _link_stays_inside(member_name: str, target: str) -> bool:
    if not target or target.startswith("/"):
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(member_name), target))
    return not (joined == ".." or joined.startswith("../") or joined.startswith("/"))


def safe_extract(
    fileobj: BinaryIO,
    dest: Path,
    *,
    max_bytes: int,
    max_files: int = 100_000,
    replace: bool = True,
    merge: bool = False,
) -> ExtractReport:
    """Extract a tar stream into the host directory ``dest`` (created if missing).

    The top-level entries of the archive end up as ``dest/<name>``. All or nothing.
    """
    dest = Path(dest)
    created_dest = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".repro-partial-", dir=dest))
    report = ExtractReport()
    try:
        _extract_into(fileobj, staging, report, max_bytes=max_bytes, max_files=max_files)
        for top in report.top:
            target = dest / top
            if merge and target.is_dir() and not target.is_symlink() and (staging / top).is_dir():
                _merge(staging / top, target)
            elif target.exists() or target.is_symlink():
                if not replace:
                    raise FileExistsError(f"{target} exists")
                old = dest / f".repro-old-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
                os.rename(staging / top, target)
                _rmtree(old)
            else:
                os.rename(staging / top, target)
        _rmtree(staging)
        return report
    except BaseException:
        _rmtree(staging)
        if created_dest:
            _rmtree(dest)
        raise


def _merge(src: Path, dst: Path) -> None:
    """Move the staged tree ``src`` over the existing directory ``dst`` (like cp -r src/. dst/)."""
    for child in sorted(os.listdir(src)):
        s, d = src / child, dst / child
        if s.is_dir() and not s.is_symlink() and d.is_dir() and not d.is_symlink():
            _merge(s, d)
            st = os.stat(s)
            os.utime(d, (st.st_mtime, st.st_mtime))
        else:
            if d.is_symlink() or d.is_file():
                d.unlink()
            elif d.exists():
                shutil.rmtree(d)
            os.rename(s, d)


def _rmtree(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    elif p.exists():
        shutil.rmtree(p, ignore_errors=True)


def _extract_into(fileobj: BinaryIO, root: Path, report: ExtractReport, *, max_bytes: int, max_files: int) -> None:
    dir_times: list[tuple[Path, float]] = []
    links: list[tuple[Path, str, float]] = []
    seen = 0
    root_real = os.path.realpath(root)
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for m in tar:
            seen += 1
            if seen > max_files:
                raise OutputLimitExceeded(f"archive has more than {max_files} entries")
            name = clean_member_name(m.name)
            if not name:
                continue
            top = name.split("/", 1)[0]
            if top not in report.top and (m.isdir() or m.isfile() or m.issym()):
                report.top.append(top)
            path = root / name
            parent_real = os.path.realpath(path.parent)
            if parent_real != root_real and not parent_real.startswith(root_real + os.sep):
                raise PolicyViolation(f"archive member escapes the destination: {m.name!r}")
            if m.isdir():
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, 0o755 | (m.mode & 0o700))
                dir_times.append((path, m.mtime))
                report.dirs += 1
            elif m.isfile():
                report.bytes += m.size
                if report.bytes > max_bytes:
                    raise OutputLimitExceeded(f"copy exceeds {max_bytes} bytes (at {name!r})")
                path.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    left = m.size
                    while left > 0:
                        chunk = src.read(min(_CHUNK, left))
                        if not chunk:
                            raise tarfile.ReadError(f"truncated archive member {name!r}")
                        out.write(chunk)
                        left -= len(chunk)
                os.chmod(path, 0o755 if m.mode & 0o111 else 0o644)
                os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
                report.files += 1
            elif m.issym():
                if _link_stays_inside(name, m.linkname):
                    links.append((path, m.linkname, m.mtime))
                else:
                    report.skipped.append(f"{name} -> {m.linkname} (symlink leaving the tree)")
            elif m.islnk():
                report.skipped.append(f"{name} (hardlink to {m.linkname})")
            else:
                kind = "device" if (m.ischr() or m.isblk()) else "fifo" if m.isfifo() else "special file"
                report.skipped.append(f"{name} ({kind})")
    for path, target, mtime in links:
        parent_real = os.path.realpath(path.parent)
        if parent_real != root_real and not parent_real.startswith(root_real + os.sep):
            report.skipped.append(f"{path.relative_to(root)} (parent is a link)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            report.skipped.append(f"{path.relative_to(root)} (duplicate)")
            continue
        os.symlink(target, path)
        try:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        except (NotImplementedError, OSError):
            pass
    for path, mtime in sorted(dir_times, key=lambda t: -len(t[0].parts)):
        os.utime(path, (mtime, mtime))


def _tarinfo_for(path: Path, arcname: str, st: os.stat_result, uid: int, gid: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(arcname)
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime
    return ti


def pack_path(
    src: Path,
    arcname: str,
    out: BinaryIO,
    *,
    uid: int = SANDBOX_UID,
    gid: int = SANDBOX_GID,
    max_bytes: int | None = None,
    max_files: int | None = None,
    outside_links: str = "error",
) -> list[str]:
    """Write a tar of host ``src`` (file or tree) named ``arcname`` into ``out``.

    ``arcname=""`` packs a directory's children at the top level. Returns what was skipped
    (device files, FIFOs, sockets). Symlinks leaving ``src`` are refused (``PolicyViolation``).
    """
    src = Path(src)
    arcname = clean_member_name(arcname) if arcname not in ("", ".") else ""
    skipped: list[str] = []
    total = 0
    count = 0
    src_real = os.path.realpath(src)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add(p: Path, name: str) -> None:
            nonlocal total, count
            count += 1
            if max_files is not None and count > max_files:
                raise OutputLimitExceeded(f"more than {max_files} entries")
            st = os.lstat(p)
            ti = _tarinfo_for(p, name, st, uid, gid)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                resolved = os.path.realpath(p)
                if os.path.isabs(target) or not (resolved == src_real or resolved.startswith(src_real + os.sep)):
                    if outside_links == "skip":
                        skipped.append(f"{p} -> {target} (symlink leaving the tree)")
                        return
                    raise PolicyViolation(f"symlink leaves the copied tree: {p} -> {target}")
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(ti)
            elif stat.S_ISDIR(st.st_mode):
                if name:  # "" = the root's children go to the top level
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(ti)
                for child in sorted(os.listdir(p)):
                    add(p / child, f"{name}/{child}" if name else child)
            elif stat.S_ISREG(st.st_mode):
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                ti.mode = 0o755 if st.st_mode & 0o111 else 0o644
                total += st.st_size
                if max_bytes is not None and total > max_bytes:
                    raise OutputLimitExceeded(f"copy-in exceeds {max_bytes} bytes")
                with open(p, "rb") as f:
                    tar.addfile(ti, f)
            else:
                skipped.append(str(p))

        if arcname:
            parts = arcname.split("/")
            for i in range(1, len(parts)):
                d = tarfile.TarInfo("/".join(parts[:i]))
                d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o755, uid, gid, os.lstat(src).st_mtime
                tar.addfile(d)
        add(src, arcname)
    return skipped


def pack_bytes(name: str, data: bytes, *, mtime: float, mode: int = 0o644,
               uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> bytes:
    """A one-file tar (for write_file); parent directories are included."""
    name = clean_member_name(name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = tarfile.TarInfo("/".join(parts[:i]))
            d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o755, uid, gid, mtime
            tar.addfile(d)
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, uid, gid, mtime
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def read_single_file(fileobj: BinaryIO, max_bytes: int) -> bytes:
    """The content of the first regular file in a tar stream, capped."""
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for m in tar:
            if m.isdir():
                raise IsADirectoryError(m.name)
            if not m.isfile():
                raise PolicyViolation(f"not a regular file: {m.name!r}")
            if m.size > max_bytes:
                raise OutputLimitExceeded(f"file is {m.size} bytes, more than max_bytes={max_bytes}")
            f = tar.extractfile(m)
            return f.read(m.size) if f else b""
    raise FileNotFoundError("empty archive")
