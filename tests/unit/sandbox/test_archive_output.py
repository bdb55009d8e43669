from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from sandbox import archive
from sandbox.base import OutputLimitExceeded, PolicyViolation
from sandbox.output import LogWriter, OutputCapture, StreamCapture


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, kind, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            for k, v in (extra or {}).items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("name", ["/abs", "../up", "a/../../up", "C:/x", "\\\\srv\\x"])
def test_clean_member_name_rejects(name):
    with pytest.raises(PolicyViolation):
        archive.clean_member_name(name)


def test_clean_member_name_normalises():
    assert archive.clean_member_name("./a//b/./c") == "a/b/c"


def test_extract_keeps_mtime_and_modes(tmp_path):
    old = time.time() - 86400 + 0.5
    buf = _tar([("top", None, tarfile.DIRTYPE, {"mtime": old}),
                ("top/x.sh", b"#!/bin/sh\n", tarfile.REGTYPE, {"mtime": old, "mode": 0o4755}),
                ("top/y", b"y", tarfile.REGTYPE, {"mtime": old, "mode": 0o600})])
    rep = archive.safe_extract(buf, tmp_path / "d", max_bytes=100)
    x = tmp_path / "d" / "top" / "x.sh"
    assert rep.files == 2 and abs(x.stat().st_mtime - old) < 1e-3
    assert x.stat().st_mode & 0o7777 == 0o755  # setuid dropped
    assert abs((tmp_path / "d" / "top").stat().st_mtime - old) < 1e-3
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".repro-")]


def test_extract_byte_cap_leaves_nothing(tmp_path):
    buf = _tar([("t/a", b"a" * 600, tarfile.REGTYPE, None), ("t/b", b"b" * 600, tarfile.REGTYPE, None)])
    with pytest.raises(OutputLimitExceeded):
        archive.safe_extract(buf, tmp_path / "d", max_bytes=1000)
    assert not (tmp_path / "d").exists()


def test_extract_count_cap_existing_dest_untouched(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "keep").write_text("k")
    buf = _tar([(f"t/{i}", b"", tarfile.REGTYPE, None) for i in range(20)])
    with pytest.raises(OutputLimitExceeded):
        archive.safe_extract(buf, dest, max_bytes=10, max_files=5)
    assert sorted(p.name for p in dest.iterdir()) == ["keep"]


def test_extract_links(tmp_path):
    buf = _tar([("t", None, tarfile.DIRTYPE, None), ("t/f", b"f", tarfile.REGTYPE, None),
                ("t/in", None, tarfile.SYMTYPE, {"linkname": "f"}),
                ("t/out", None, tarfile.SYMTYPE, {"linkname": "../../x"}),
                ("t/abs", None, tarfile.SYMTYPE, {"linkname": "/etc/passwd"}),
                ("t/hard", None, tarfile.LNKTYPE, {"linkname": "t/f"}),
                ("t/fifo", None, tarfile.FIFOTYPE, None)])
    rep = archive.safe_extract(buf, tmp_path / "d", max_bytes=100)
    t = tmp_path / "d" / "t"
    assert os.readlink(t / "in") == "f" and (t / "in").read_text() == "f"
    assert not (t / "out").exists() and not (t / "abs").is_symlink() and not (t / "hard").exists()
    assert not (t / "fifo").exists() and len(rep.skipped) == 4


def test_pack_refuses_outside_links_and_skips_fifos(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("f")
    os.mkfifo(src / "p")
    (src / "ok").symlink_to("f")
    out = io.BytesIO()
    skipped = archive.pack_path(src, "", out)
    assert any(s.endswith("/p") for s in skipped)
    out.seek(0)
    names = tarfile.open(fileobj=out).getnames()
    assert sorted(names) == ["f", "ok"]
    (src / "bad").symlink_to("/etc/passwd")
    with pytest.raises(PolicyViolation):
        archive.pack_path(src, "", io.BytesIO())
    assert archive.pack_path(src, "", io.BytesIO(), outside_links="skip")


def test_stream_capture_head_tail():
    c = StreamCapture(256)
    for i in range(1000):
        c.feed(f"{i:04d}\n".encode())
    text = c.text()
    assert c.truncated and text.startswith("0000\n") and text.endswith("0998\n0999\n")
    assert len(text.encode()) <= 256 and "elided" in text


def test_stream_capture_small_and_invalid_utf8():
    c = StreamCapture(100)
    c.feed(b"ok \xff\xfe")
    assert not c.truncated and c.text() == "ok \ufffd\ufffd"


def test_log_writer_cap(tmp_path):
    w = LogWriter(tmp_path / "l.log", cap=10)
    w.write(b"0123456789abcdef")
    w.close()
    data = (tmp_path / "l.log").read_bytes()
    assert data.startswith(b"0123456789\n[log capped") and w.dropped == 6


def test_output_capture_routes_streams():
    c = OutputCapture(64)
    c.feed(1, b"out")
    c.feed(2, b"err")
    c.close()
    assert c.stdout.text() == "out" and c.stderr.text() == "err" and not c.truncated and c.log_path is None
