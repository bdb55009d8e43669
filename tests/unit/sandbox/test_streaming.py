"""The streaming path of the one Sandbox interface: ``exec(..., on_output=...)``, the log written as
the output comes, and ``Lines`` (chunks -> whole lines). The real backends run the conformance
checks exec_streams_output_as_it_comes / exec_log_written_as_it_comes (tests/integration/sandbox)."""
from __future__ import annotations

import inspect

from sandbox.base import ExecResult, Sandbox
from sandbox.fake import FakeSandbox
from sandbox.local import LocalSandbox
from sandbox.output import Lines, LogWriter, OutputCapture


def test_every_backend_takes_on_output():
    from sandbox.docker import DockerSandbox

    for cls in (Sandbox, LocalSandbox, FakeSandbox, DockerSandbox):
        assert "on_output" in inspect.signature(cls.exec).parameters, cls


def test_log_writer_is_readable_before_close(tmp_path):
    w = LogWriter(tmp_path / "l.log", cap=1 << 20)
    w.write(b"epoch 0 step 20/60 loss 0.69\n")
    assert (tmp_path / "l.log").read_bytes() == b"epoch 0 step 20/60 loss 0.69\n"  # not held in a buffer
    w.close()


def test_capture_hands_on_chunks_after_the_log_and_survives_a_bad_callback(tmp_path):
    got = []

    def on_output(stream, chunk):
        got.append((stream, chunk, (tmp_path / "x.log").read_bytes()))

    c = OutputCapture(1024, tmp_path / "x.log", on_output=on_output)
    c.feed(1, b"a\n")
    c.feed(2, b"b\n")
    assert got == [(1, b"a\n", b"a\n"), (2, b"b\n", b"a\nb\n")]

    def broken(stream, chunk):
        raise RuntimeError("consumer bug")

    c2 = OutputCapture(1024, on_output=broken)
    c2.feed(1, b"x")
    c2.feed(1, b"y")  # dropped after the first failure; the capture goes on
    assert c2.stdout.text() == "xy" and c2.extra == {"on_output_error": "RuntimeError: consumer bug"}


def test_lines_split_across_chunks_and_streams():
    got = []
    lines = Lines(lambda stream, line: got.append((stream, line)))
    for chunk in (b"epoch 0 st", b"ep 1/2 loss 0.5\nnext", b" line\r\n", b"\n\nbar 10%\rbar 20%\r"):
        lines(1, chunk)
    lines(2, b"warn\xc3")  # a UTF-8 character cut in two
    lines(2, b"\xa9\n")
    lines(1, b"no end")
    assert got == [(1, "epoch 0 step 1/2 loss 0.5"), (1, "next line"), (1, "bar 10%"), (1, "bar 20%"), (2, "warn\u00e9")]
    lines.close()
    assert got[-1] == (1, "no end")


def test_lines_cut_a_line_without_end():
    got = []
    lines = Lines(lambda stream, line: got.append(line), max_chars=4)
    lines(1, b"abcdefghij")
    assert got == ["abcd", "efgh"]
    lines.close()
    assert got == ["abcd", "efgh", "ij"]


def test_fake_streams_its_scripted_output():
    sb = FakeSandbox([ExecResult(0, stdout="out\n", stderr="err\n")])
    got = []
    r = sb.exec("x", timeout=5, on_output=lambda s, c: got.append((s, c)))
    assert r.stdout == "out\n" and got == [(1, b"out\n"), (2, b"err\n")]
