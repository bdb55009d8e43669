"""Bounded capture of a process's output: head + tail for the caller, a capped log on disk."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

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
    """Full output (stdout and stderr interleaved as they arrive) to a file, capped."""

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
    def __init__(self, cap: int, log_path: Path | None = None, log_cap: int = 64 << 20):
        self.stdout = StreamCapture(cap)
        self.stderr = StreamCapture(cap)
        self.log = LogWriter(log_path, log_cap)

    def feed(self, stream: int, data: bytes) -> None:
        (self.stderr if stream == 2 else self.stdout).feed(data)
        self.log.write(data)

    def close(self) -> None:
        self.log.close()

    @property
    def truncated(self) -> bool:
        return self.stdout.truncated or self.stderr.truncated

    @property
    def log_path(self) -> str | None:
        return str(self.log.path) if self.log.path else None
