"""Errors raised while turning a PDF into a :class:`papers.paper.Paper`."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "not_found", "not_pdf", "encrypted", "corrupt", "empty", "no_text", "too_large", "timeout"
]

KINDS: tuple[str, ...] = (
    "not_found", "not_pdf", "encrypted", "corrupt", "empty", "no_text", "too_large", "timeout",
)


class PaperError(Exception):
    """A paper could not be ingested.

    ``kind`` is a stable machine-readable code (see :data:`KINDS`); ``str(err)`` is a
    sentence that names the problem and says what to do about it.
    """

    def __init__(self, kind: ErrorKind | str, message: str, *, path: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown PaperError kind {kind!r}")
        super().__init__(message)
        self.kind: str = kind
        self.path = path

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"PaperError(kind={self.kind!r}, message={str(self)!r})"
