"""Bounded capture of a process's output: head + tail for the caller, a capped log on disk written
as the output comes, and the chunks handed on as they arrive (``on_output``; ``Lines`` for lines)."""
from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import BinaryIO, Callable

MARKER = "\n[... {n} bytes elided ...]\n"
_MARKER_RESERVE = 48


class StreamCapture:
    """Keeps the first ``cap//2`` and the last ``cap - cap//2 - reserve`` bytes of a stream."""

    def __init__(self, cap: int):
        self.cap = cap
        self.head_cap = cap // 2
        self.tail_cap = max(0, cap - self.head_cap - _MARKER_RESERVE)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_cap + 65536:
                del self.tail[: len(self.tail) - self.tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(len(self.tail), self.tail_cap)

    def text(self) -> str:
        tail = bytes(self.tail[-self.tail_cap:]) if self.tail_cap else b""
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        dropped = self.total - len(self.head) - len(tail)
        return (
            bytes(self.head).decode("utf-8", errors="replace")
            + MARKER.format(n=dropped)
            + tail.decode("utf-8", errors="replace")
        )


class LogWriter:
    """Full output (stdout and stderr interleaved as they arrive) to a file, capped; each chunk is
    flushed to the file as it is written, so a reader (``tail -f``, the run page) sees it at once."""

    def __init__(self, path: Path | None, cap: int):
        self.path = Path(path) if path else None
        self.cap = cap
        self.written = 0
        self.dropped = 0
        self._f: BinaryIO | None = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            self._f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if not self._f or not data:
            return
        room = self.cap - self.written
        if room > 0:
            chunk = data[:room]
            self._f.write(chunk)
            self._f.flush()
            self.written += len(chunk)
            data = data[room:]
        self.dropped += len(data)

    def close(self) -> None:
        if self._f:
            if self.dropped:
                self._f.write(f"\n[log capped at {self.cap} bytes; {self.dropped} more bytes dropped]\n".encode())
            self._f.close()
            self._f = None


class OutputCapture:
    """What every backend's exec feeds each chunk to: the head/tail captures, the log, then
    ``on_output`` (a callback that raises is dropped, and the command runs on)."""

    def __init__(self, cap: int, log_path: Path | None = None, log_cap: int = 64 << 20,
                 on_output: Callable[[int, bytes], None] | None = None):
        self.stdout = StreamCapture(cap)
        self.stderr = StreamCapture(cap)
        self.log = LogWriter(log_path, log_cap)
        self.on_output = on_output
        self.callback_error: str | None = None

    def feed(self, stream: int, data: bytes) -> None:
        (self.stderr if stream == 2 else self.stdout).feed(data)
        self.log.write(data)
        if self.on_output is not None and data:
            try:
                self.on_output(2 if stream == 2 else 1, data)
            except Exception as exc:  # noqa: BLE001 - a consumer's bug must not orphan the command
                self.on_output = None
                self.callback_error = f"{type(exc).__name__}: {exc}"[:300]

    @property
    def extra(self) -> dict:
        return {"on_output_error": self.callback_error} if self.callback_error else {}

    def close(self) -> None:
        self.log.close()

    @property
    def truncated(self) -> bool:
        return self.stdout.truncated or self.stderr.truncated

    @property
    def log_path(self) -> str | None:
        return str(self.log.path) if self.log.path else None


_LINE_END = re.compile(r"\r\n|\r|\n")


class Lines:
    """An ``on_output`` callback that hands on whole lines: ``on_line(stream, text)`` once per line
    ended by ``\n``, ``\r\n`` or a lone ``\r`` (a progress bar's redraw), decoded as UTF-8 with
    replacement across chunk boundaries, without its line end; blank lines are skipped. A line
    longer than ``max_chars`` is handed on in pieces of that size. ``close()`` hands on the last
    line when it has no line end (call it once the exec has returned)."""

    def __init__(self, on_line: Callable[[int, str], None], max_chars: int = 8192):
        self.on_line = on_line
        self.max_chars = max_chars
        self._pending: dict[int, str] = {}
        self._decoders: dict[int, codecs.IncrementalDecoder] = {}

    def __call__(self, stream: int, chunk: bytes) -> None:
        dec = self._decoders.get(stream)
        if dec is None:
            dec = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._split(stream, self._pending.pop(stream, "") + dec.decode(chunk))

    def _split(self, stream: int, text: str) -> None:
        *whole, rest = _LINE_END.split(text)
        for line in whole:
            self._emit(stream, line)
        while len(rest) > self.max_chars:
            self._emit(stream, rest[: self.max_chars])
            rest = rest[self.max_chars:]
        if rest:
            self._pending[stream] = rest

    def _emit(self, stream: int, line: str) -> None:
        if line.strip():
            self.on_line(stream, line)

    def close(self) -> None:
        for stream, dec in list(self._decoders.items()):
            tail = self._pending.pop(stream, "") + dec.decode(b"", final=True)
            self._split(stream, tail)
            self._emit(stream, self._pending.pop(stream, ""))
